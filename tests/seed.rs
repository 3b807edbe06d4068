//! The seed (shared/seed/sip-oauth-jabber.txt) on the wire: Jabber's REGISTERs with CRLF line
//! ends, the Cisco multipart body and a token, and Unified CM's 407, 200 and 403, parsed field
//! by field; responses written for them echo what RFC 3261 §8.2.6.2 says they must.

use regstorm::load::jabber::{cisco_body, seed_register, Register, CISCO_BODY_LEN, SAMPLE_TOKEN};
use regstorm::sip::{
    parse, parse_http_date, Aor, ContactValue, Frame, Framer, HeaderName, Host, Limits, Method,
    ResponseWriter, Source, StartLine, Uri, EMPTY_HEADER,
};

fn crlf(text: &str) -> Vec<u8> {
    let mut s = text.replace('\n', "\r\n");
    s.push_str("\r\n");
    s.into_bytes()
}

#[test]
fn register_with_token_and_body_field_by_field() {
    let wire = seed_register(SAMPLE_TOKEN);
    let mut hs = [EMPTY_HEADER; 64];
    let Ok(Frame::Message(m)) = Framer::new(Limits::default()).next(&wire, &mut hs) else {
        panic!("the seed REGISTER must frame as one message");
    };
    assert_eq!(m.len(), wire.len());
    m.check_mandatory().unwrap();
    assert_eq!(m.method(), Some(Method::Register));
    let Some(Ok(Uri::Sip(ruri))) = m.request_uri() else {
        panic!("Request-URI")
    };
    assert_eq!(
        (ruri.user, ruri.host),
        (None, Host::V4("10.10.10.1".parse().unwrap()))
    );

    let via = m.top_via().unwrap();
    assert_eq!(via.transport, b"TLS");
    assert_eq!(
        (via.host, via.port),
        (Host::V4("10.10.10.10".parse().unwrap()), Some(62162))
    );
    assert_eq!(via.branch(), Some(&b"z9hG4bK00004a82"[..]));
    assert_eq!(m.vias().count(), 1);

    let from = m.from().unwrap();
    assert_eq!(from.uri, b"sip:1010@10.10.10.1");
    assert_eq!(from.tag(), Some(&b"882323451234089000003bdd-00005eff"[..]));
    let to = m.to().unwrap();
    assert_eq!(to.tag(), None);
    assert_eq!(
        Aor::new(&to.sip_uri().unwrap()).as_str(),
        "sip:1010@10.10.10.1"
    );

    assert_eq!(
        m.call_id().unwrap(),
        b"88232345-12340017-00001c0b-00000cfa@10.10.10.10"
    );
    assert_eq!(m.max_forwards().unwrap(), Some(70));
    assert_eq!(
        m.date().unwrap(),
        parse_http_date(b"Mon, 30 Mar 2020 11:03:19 GMT")
    );
    let cseq = m.cseq().unwrap();
    assert_eq!((cseq.seq, cseq.method), (2271, Method::Register));
    assert_eq!(m.header(HeaderName::UserAgent), Some(&b"Cisco-CSF"[..]));

    let contacts: Vec<_> = m.contacts().collect::<Result<_, _>>().unwrap();
    let [ContactValue::Addr(c)] = contacts[..] else {
        panic!("one Contact: {contacts:?}")
    };
    assert_eq!(
        c.addr.uri,
        b"sip:a8ae9f92-4b07-a0d7-d701-29320aed1e2e@10.10.10.10:62162;transport=tls"
    );
    assert_eq!(
        c.instance(),
        Some(&b"<urn:uuid:00000000-0000-0000-0000-882323451234>"[..])
    );
    assert_eq!(c.device_name(), Some(&b"CSFrado"[..]));
    assert_eq!(
        c.addr.params.get("+u.sip!model.ccm.cisco.com"),
        Some(Some(&b"\"503\""[..]))
    );
    assert_eq!(c.addr.params.get("video"), Some(None));
    assert_eq!((c.expires, c.q), (None, None));
    let curi = c.addr.sip_uri().unwrap();
    assert_eq!(curi.param("transport"), Some(Some(&b"tls"[..])));

    let bearer = m.bearer().unwrap().unwrap();
    assert_eq!(bearer.header, HeaderName::ProxyAuthorization);
    assert_eq!(bearer.token, SAMPLE_TOKEN.as_bytes());

    let supported: Vec<_> = m
        .option_tags(HeaderName::Supported)
        .collect::<Result<_, _>>()
        .unwrap();
    assert_eq!(supported.len(), 17);
    assert_eq!(supported[0], b"replaces");
    assert_eq!(supported[16], b"X-cisco-duplicate-reg");
    assert_eq!(m.option_tags(HeaderName::Require).count(), 0);
    assert!(m.header(HeaderName::Reason).is_some());
    assert_eq!(m.expires().unwrap(), Some(3600));

    let ct = m.content_type().unwrap().unwrap();
    assert_eq!((ct.kind, ct.subtype), (&b"multipart"[..], &b"mixed"[..]));
    assert_eq!(
        ct.params.get("boundary"),
        Some(Some(&b"uniqueBoundary"[..]))
    );
    assert_eq!(m.header(HeaderName::MimeVersion), Some(&b"1.0"[..]));
    assert_eq!(m.content_length, Some(CISCO_BODY_LEN as u32));
    assert_eq!(m.body, cisco_body());
}

#[test]
fn first_register_has_no_credentials() {
    let mut first = Register::seed(SAMPLE_TOKEN);
    first.token = None;
    first.cseq = 2270;
    first.branch = "z9hG4bK00001188";
    first.body = false;
    let mut wire = Vec::new();
    first.write(&mut wire, &[]);
    let mut hs = [EMPTY_HEADER; 64];
    let m = parse(&wire, &mut hs).unwrap().complete().unwrap();
    assert_eq!(m.bearer().unwrap(), None);
    assert_eq!(m.cseq().unwrap().seq, 2270);
    assert_eq!(m.content_length, Some(0));
    assert!(m.body.is_empty());
}

const UCM_407: &str = "SIP/2.0 407 Proxy Authentication Required
Via: SIP/2.0/TLS 10.10.10.10:62162;branch=z9hG4bK00001188
From: <sip:1010@10.10.10.1>;tag=882323451234089000003bdd-00005eff
To: <sip:1010@10.10.10.1>;tag=441122775
Date: Mon, 30 Mar 2020 11:03:31 GMT
Call-ID: 88232345-12340017-00001c0b-00000cfa@10.10.10.10
Server: Cisco-CUCM12.5
CSeq: 2270 REGISTER
Proxy-Authenticate: Bearer realm=\"ccmsipline\"
Content-Length: 0
";

const UCM_200: &str = "SIP/2.0 200 OK
Via: SIP/2.0/TLS 10.10.10.10:62162;branch=z9hG4bK00004a82
From: <sip:1010@10.10.10.1>;tag=882323451234089000003bdd-00005eff
To: <sip:1010@10.10.10.1>;tag=1915868308
Date: Mon, 30 Mar 2020 11:03:31 GMT
Call-ID: 88232345-12340017-00001c0b-00000cfa@10.10.10.10
Server: Cisco-CUCM12.5
CSeq: 2271 REGISTER
Expires: 120
Contact: <sip:a8ae9f92-4b07-a0d7-d701-29320aed1e2e@10.10.10.10:62162;transport=tls>;+sip.instance=\"<urn:uuid:00000000-0000-0000-0000-882323451234>\";+u.sip!devicename.ccm.cisco.com=\"CSFrado\";+u.sip!model.ccm.cisco.com=\"503\";video;x-cisco-newreg
Supported: X-cisco-srtp-fallback,X-cisco-sis-9.1.0
Content-Length: 0
";

const UCM_403: &str = "SIP/2.0 403 Forbidden
Via: SIP/2.0/TLS 10.5.10.121:50347;branch=z9hG4bK00005163
From: <sip:2000@UCM2-PUB>;tag=005056867e66010a00006698-00002a32
To: <sip:2000@UCM2-PUB>;tag=1946377502
Date: Fri, 03 Aug 2018 05:00:18 GMT
Call-ID: 00505686-7e660005-0000216b-0000366f@10.5.10.121
Server: Cisco-CUCM12.5
CSeq: 363 REGISTER
Retry-After: 35
Warning: 399 UCM2-PUB \"SIP OAuth Registration port Mismatch\"
Content-Length: 0
";

#[test]
fn ucm_407_challenge() {
    let wire = crlf(UCM_407);
    let mut hs = [EMPTY_HEADER; 32];
    let m = parse(&wire, &mut hs).unwrap().complete().unwrap();
    assert_eq!(
        m.start,
        StartLine::Response {
            code: 407,
            reason: "Proxy Authentication Required"
        }
    );
    assert_eq!(m.to().unwrap().tag(), Some(&b"441122775"[..]));
    assert_eq!(
        m.header(HeaderName::ProxyAuthenticate),
        Some(&br#"Bearer realm="ccmsipline""#[..])
    );
    assert_eq!(m.header(HeaderName::Server), Some(&b"Cisco-CUCM12.5"[..]));
    assert_eq!(m.cseq().unwrap().seq, 2270);
    assert_eq!(m.len(), wire.len());
}

#[test]
fn ucm_200_ok() {
    let wire = crlf(UCM_200);
    let mut hs = [EMPTY_HEADER; 32];
    let m = parse(&wire, &mut hs).unwrap().complete().unwrap();
    assert_eq!(
        m.start,
        StartLine::Response {
            code: 200,
            reason: "OK"
        }
    );
    assert_eq!(m.expires().unwrap(), Some(120));
    let Some(Ok(ContactValue::Addr(c))) = m.contacts().next() else {
        panic!("Contact")
    };
    assert_eq!(c.device_name(), Some(&b"CSFrado"[..]));
    assert_eq!(c.addr.params.get("x-cisco-newreg"), Some(None));
    let supported: Vec<_> = m
        .option_tags(HeaderName::Supported)
        .collect::<Result<_, _>>()
        .unwrap();
    assert_eq!(
        supported,
        [&b"X-cisco-srtp-fallback"[..], b"X-cisco-sis-9.1.0"]
    );
}

#[test]
fn ucm_403_port_mismatch() {
    let wire = crlf(UCM_403);
    let mut hs = [EMPTY_HEADER; 32];
    let m = parse(&wire, &mut hs).unwrap().complete().unwrap();
    assert_eq!(
        m.start,
        StartLine::Response {
            code: 403,
            reason: "Forbidden"
        }
    );
    assert_eq!(m.header(HeaderName::RetryAfter), Some(&b"35"[..]));
    assert_eq!(
        m.header(HeaderName::Warning),
        Some(&br#"399 UCM2-PUB "SIP OAuth Registration port Mismatch""#[..])
    );
    let to = m.to().unwrap().sip_uri().unwrap();
    assert_eq!(to.host, Host::Name("UCM2-PUB"));
}

#[test]
fn written_407_matches_the_seed_challenge() {
    let mut first = Register::seed(SAMPLE_TOKEN);
    first.token = None;
    first.cseq = 2270;
    first.branch = "z9hG4bK00001188";
    let mut wire = Vec::new();
    first.write(&mut wire, &cisco_body());
    let mut hs = [EMPTY_HEADER; 64];
    let req = parse(&wire, &mut hs).unwrap().complete().unwrap();

    let mut out = b"leftover bytes stay: ".to_vec();
    let mut w = ResponseWriter::start(
        &mut out,
        407,
        b"Proxy Authentication Required",
        &req,
        b"441122775",
        None,
    );
    w.header("Date", b"Mon, 30 Mar 2020 11:03:31 GMT")
        .header("Server", b"Cisco-CUCM12.5")
        .header("Proxy-Authenticate", br#"Bearer realm="ccmsipline""#);
    w.finish(b"");
    let (prefix, written) = out.split_at(21);
    assert_eq!(prefix, b"leftover bytes stay: ");

    // Same headers as Unified CM's 407, in the writer's order: echoed ones first.
    let mut hs2 = [EMPTY_HEADER; 32];
    let ours = parse(written, &mut hs2).unwrap().complete().unwrap();
    let ucm_wire = crlf(UCM_407);
    let mut hs3 = [EMPTY_HEADER; 32];
    let ucm = parse(&ucm_wire, &mut hs3).unwrap().complete().unwrap();
    assert_eq!(ours.start, ucm.start);
    assert_eq!(ours.len(), written.len());
    let sorted = |m: &regstorm::sip::Message<'_, '_>| {
        let mut v: Vec<(String, Vec<u8>)> = m
            .headers
            .iter()
            .map(|h| (h.name.to_string(), h.value.to_vec()))
            .collect();
        v.sort();
        v
    };
    assert_eq!(sorted(&ours), sorted(&ucm));
}

#[test]
fn writer_stamps_received_and_rport_on_the_top_via_only() {
    let req = b"REGISTER sip:10.10.10.1 SIP/2.0\r\n\
Via: SIP/2.0/UDP client.example.com:5060;rport;branch=z9hG4bK1;received=1.1.1.1, SIP/2.0/UDP p.example.com;branch=z9hG4bK0\r\n\
Via: SIP/2.0/UDP q.example.com;branch=z9hG4bKq;rport\r\n\
From: <sip:1010@10.10.10.1>;tag=a\r\nTo: <sip:1010@10.10.10.1>;tag=already\r\n\
Call-ID: c@h\r\nCSeq: 1 REGISTER\r\nl: 0\r\n\r\n";
    let mut hs = [EMPTY_HEADER; 16];
    let m = parse(req, &mut hs).unwrap().complete().unwrap();
    let mut out = Vec::new();
    let src = Source {
        ip: "192.0.2.7".parse().unwrap(),
        port: 40000,
    };
    ResponseWriter::start(&mut out, 200, b"OK", &m, b"new", Some(src)).finish(b"");
    let text = String::from_utf8(out).unwrap();
    assert!(text.contains("Via: SIP/2.0/UDP client.example.com:5060;rport=40000;branch=z9hG4bK1;received=192.0.2.7, SIP/2.0/UDP p.example.com;branch=z9hG4bK0\r\n"), "{text}");
    assert!(
        text.contains("Via: SIP/2.0/UDP q.example.com;branch=z9hG4bKq;rport\r\n"),
        "{text}"
    );
    assert!(
        text.contains("To: <sip:1010@10.10.10.1>;tag=already\r\n"),
        "existing To tag kept: {text}"
    );
    assert!(text.ends_with("Content-Length: 0\r\n\r\n"));
}

#[test]
fn writer_omits_received_when_sent_by_is_the_source() {
    let req = b"OPTIONS sip:h SIP/2.0\r\nVia: SIP/2.0/UDP 192.0.2.7:5060;branch=z9hG4bK1\r\n\
From: <sip:a@h>;tag=a\r\nTo: <sip:b@h>\r\nCall-ID: c\r\nCSeq: 1 OPTIONS\r\nl: 0\r\n\r\n";
    let mut hs = [EMPTY_HEADER; 16];
    let m = parse(req, &mut hs).unwrap().complete().unwrap();
    let mut out = Vec::new();
    let src = Source {
        ip: "192.0.2.7".parse().unwrap(),
        port: 5060,
    };
    ResponseWriter::start(&mut out, 200, b"OK", &m, b"t1", Some(src)).finish(b"");
    let text = String::from_utf8(out).unwrap();
    assert!(
        text.contains("Via: SIP/2.0/UDP 192.0.2.7:5060;branch=z9hG4bK1\r\n"),
        "{text}"
    );
    assert!(text.contains("To: <sip:b@h>;tag=t1\r\n"), "{text}");
}

#[test]
fn writer_received_is_bare_and_mapped_ipv4_is_ipv4() {
    let req =
        b"OPTIONS sip:h SIP/2.0\r\nVia: SIP/2.0/UDP [2001:db8::1]:5060;branch=z9hG4bK1;rport\r\n\
Via: SIP/2.0/UDP 192.0.2.9;branch=z9hG4bK2\r\n\
From: <sip:a@h>;tag=a\r\nTo: <sip:b@h>\r\nCall-ID: c\r\nCSeq: 1 OPTIONS\r\nl: 0\r\n\r\n";
    let mut hs = [EMPTY_HEADER; 16];
    let m = parse(req, &mut hs).unwrap().complete().unwrap();
    let mut out = Vec::new();
    let src = Source {
        ip: "2001:db8::2".parse().unwrap(),
        port: 7000,
    };
    ResponseWriter::start(&mut out, 200, b"OK", &m, b"t", Some(src)).finish(b"");
    let text = String::from_utf8(out).unwrap();
    assert!(
        text.contains(";rport=7000;received=2001:db8::2\r\n"),
        "{text}"
    );
    // An IPv4 client seen through a dual-stack socket matches its IPv4 sent-by.
    let req = b"OPTIONS sip:h SIP/2.0\r\nVia: SIP/2.0/TCP 192.0.2.9:5060;branch=z9hG4bK1\r\n\
From: <sip:a@h>;tag=a\r\nTo: <sip:b@h>;tag\r\nCall-ID: c\r\nCSeq: 1 OPTIONS\r\nl: 0\r\n\r\n";
    let m = parse(req, &mut hs).unwrap().complete().unwrap();
    let mut out = Vec::new();
    let src = Source {
        ip: "::ffff:192.0.2.9".parse().unwrap(),
        port: 5060,
    };
    ResponseWriter::start(&mut out, 400, b"Malformed To", &m, b"t", Some(src)).finish(b"");
    let text = String::from_utf8(out).unwrap();
    assert!(
        text.contains("Via: SIP/2.0/TCP 192.0.2.9:5060;branch=z9hG4bK1\r\n"),
        "{text}"
    );
    assert!(
        text.contains("To: <sip:b@h>;tag\r\n"),
        "a malformed To is echoed, not patched: {text}"
    );
}

/// Fuzz finding `message-to-tag-flag` (tests/fuzz_regressions): a To with a valueless `tag`
/// once got a second tag appended by the writer.
#[test]
fn regression_fuzz_to_tag_flag() {
    let input = std::fs::read(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/fuzz_regressions/message-to-tag-flag.bin"
    ))
    .unwrap();
    let mut hs = [EMPTY_HEADER; 16];
    let m = parse(&input, &mut hs).unwrap().complete().unwrap();
    assert_eq!(
        m.to().unwrap_err(),
        regstorm::sip::Error::BadValue(HeaderName::To)
    );
    let mut out = Vec::new();
    ResponseWriter::start(&mut out, 400, b"Malformed To", &m, b"tag", None).finish(b"");
    let text = String::from_utf8(out).unwrap();
    assert!(text.contains("\r\nTo: m;tag\r\n"), "{text}");
    assert_eq!(text.matches("tag").count(), 1, "{text}");
}

/// Fuzz finding `uri-ipv4-digits-overflow` (tests/fuzz_regressions, from the uri and message
/// targets of the fuzz soak): a host of 59 digits overflowed the IPv4 octet's accumulator
/// (a panic with overflow checks on, as in tests and the fuzz build). It is a hostname-shaped
/// run of digits, not an address; the URI must parse or be refused without panicking, and a
/// REGISTER to it must get an answer.
#[test]
fn regression_fuzz_uri_ipv4_digits_overflow() {
    let input = std::fs::read(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/fuzz_regressions/uri-ipv4-digits-overflow.bin"
    ))
    .unwrap();
    assert!(input.starts_with(b"sip:4444"));
    let _ = Uri::parse(&input);
    let _ = regstorm::sip::SipUri::parse(&input);
    // Digits long enough to overflow a u32 many times over, as a plain host.
    let host = "9".repeat(40);
    let uri = format!("sip:alice@{host}");
    assert!(!matches!(
        regstorm::sip::SipUri::parse(uri.as_bytes()).map(|u| u.host),
        Some(Host::V4(_))
    ));
    assert!(!matches!(
        regstorm::sip::SipUri::parse(b"sip:alice@256.1.1.1").map(|u| u.host),
        Some(Host::V4(_))
    ));
}
