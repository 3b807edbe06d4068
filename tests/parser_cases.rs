//! Table-like cases for each entry point of the wire layer, through one macro: every row is
//! its own named test, `input => expected`.

use regstorm::sip::{
    parse, parse_datagram, Aor, ContactValue, Error, HeaderName, Limits, Message, SipUri,
    StartLine, Uri, EMPTY_HEADER,
};

/// `cases!(adapter; name: input => expected; ...)`: one `#[test]` per row.
macro_rules! cases {
    ($adapter:ident; $( $name:ident : $input:expr => $expected:expr ;)*) => {
        $(
            #[test]
            fn $name() {
                let input = $input;
                assert_eq!($adapter(input), $expected, "input: {:?}", input);
            }
        )*
    };
}

/// Parses a datagram and summarises its start line.
fn start(text: &str) -> Result<String, Error> {
    let mut hs = [EMPTY_HEADER; 16];
    let m = parse_datagram(text.as_bytes(), &mut hs, &Limits::default())?;
    Ok(match m.start {
        StartLine::Request { method, uri } => format!("{} {uri}", method.as_str()),
        StartLine::Response { code, reason } => format!("{code} {reason}"),
    })
}

/// Runs `f` on a REGISTER carrying the given header lines.
fn with_headers<T>(lines: &str, f: impl FnOnce(&Message<'_, '_>) -> T) -> Result<T, Error> {
    let text = format!("REGISTER sip:example.com SIP/2.0\r\n{lines}\r\n\r\n");
    let mut hs = [EMPTY_HEADER; 16];
    let m = parse_datagram(text.as_bytes(), &mut hs, &Limits::default())?;
    Ok(f(&m))
}

fn header_names(lines: &str) -> Result<Vec<String>, Error> {
    with_headers(lines, |m| {
        m.headers
            .iter()
            .map(|h| format!("{}={}", h.name, String::from_utf8_lossy(h.value)))
            .collect()
    })
}

fn uri(s: &str) -> String {
    match Uri::parse(s.as_bytes()) {
        None => "invalid".into(),
        Some(Uri::Other { scheme, .. }) => format!("other {scheme}"),
        Some(Uri::Sip(u)) => format!(
            "{} user={:?} pw={:?} host={:?} port={:?} params={:?} headers={:?}",
            if u.sips { "sips" } else { "sip" },
            u.user.map(|b| String::from_utf8_lossy(b).into_owned()),
            u.password.map(|b| String::from_utf8_lossy(b).into_owned()),
            u.host,
            u.port,
            String::from_utf8_lossy(u.params),
            u.headers.map(|b| String::from_utf8_lossy(b).into_owned()),
        ),
    }
}

fn aor(s: &str) -> Option<String> {
    SipUri::parse(s.as_bytes()).map(|u| Aor::new(&u).as_str().to_string())
}

fn contacts(value: &str) -> Result<Vec<String>, Error> {
    with_headers(&format!("Contact: {value}"), |m| {
        m.contacts()
            .map(|c| {
                c.map(|c| match c {
                    ContactValue::Wildcard => "*".to_string(),
                    ContactValue::Addr(c) => format!(
                        "{} expires={:?} q={:?} instance={:?} device={:?}",
                        String::from_utf8_lossy(c.addr.uri),
                        c.expires,
                        c.q,
                        c.instance()
                            .map(|b| String::from_utf8_lossy(b).into_owned()),
                        c.device_name()
                            .map(|b| String::from_utf8_lossy(b).into_owned()),
                    ),
                })
            })
            .collect::<Result<Vec<_>, _>>()
    })?
}

fn bearer(lines: &str) -> Result<Option<(String, String)>, Error> {
    with_headers(lines, |m| {
        m.bearer().map(|b| {
            b.map(|b| {
                (
                    b.header.to_string(),
                    String::from_utf8_lossy(b.token).into_owned(),
                )
            })
        })
    })?
}

fn cseq(lines: &str) -> Result<(u32, String), Error> {
    with_headers(lines, |m| {
        m.cseq().map(|c| (c.seq, c.method.as_str().to_string()))
    })?
}

fn expires(lines: &str) -> Result<Option<u32>, Error> {
    with_headers(lines, |m| m.expires())?
}

fn vias(value: &str) -> Result<Vec<String>, Error> {
    with_headers(&format!("Via: {value}"), |m| {
        m.vias()
            .map(|v| {
                v.map(|v| {
                    format!(
                        "{} {:?}:{:?} branch={:?} rport={:?}",
                        String::from_utf8_lossy(v.transport),
                        v.host,
                        v.port,
                        v.branch().map(|b| String::from_utf8_lossy(b).into_owned()),
                        v.rport(),
                    )
                })
            })
            .collect::<Result<Vec<_>, _>>()
    })?
}

fn stream_status(text: &str) -> Result<Option<usize>, Error> {
    let mut hs = [EMPTY_HEADER; 16];
    parse(text.as_bytes(), &mut hs).map(|s| s.complete().map(|m| m.len()))
}

cases! { start;
    request_line: "REGISTER sip:10.10.10.1 SIP/2.0\r\n\r\n" => Ok("REGISTER sip:10.10.10.1".into());
    extension_method: "FOO sip:a@b SIP/2.0\r\n\r\n" => Ok("FOO sip:a@b".into());
    methods_are_case_sensitive: "register sip:a@b SIP/2.0\r\n\r\n" => Ok("register sip:a@b".into());
    version_is_case_insensitive: "OPTIONS sip:a@b sip/2.0\r\n\r\n" => Ok("OPTIONS sip:a@b".into());
    other_version_is_505: "OPTIONS sip:a@b SIP/2.1\r\n\r\n" => Err(Error::UnsupportedVersion);
    response_other_version: "SIP/3.0 200 OK\r\n\r\n" => Err(Error::UnsupportedVersion);
    garbage_version: "OPTIONS sip:a@b HTTP/1.1\r\n\r\n" => Err(Error::BadStartLine);
    missing_version: "OPTIONS sip:a@b\r\n\r\n" => Err(Error::BadStartLine);
    method_with_bad_char: "OPT(IONS sip:a@b SIP/2.0\r\n\r\n" => Err(Error::BadMethod);
    bracketed_uri: "OPTIONS <sip:a@b> SIP/2.0\r\n\r\n" => Err(Error::BadRequestUri);
    non_ascii_uri: "OPTIONS sip:\u{e9}@b SIP/2.0\r\n\r\n" => Err(Error::BadRequestUri);
    response: "SIP/2.0 407 Proxy Authentication Required\r\n\r\n" => Ok("407 Proxy Authentication Required".into());
    response_empty_reason: "SIP/2.0 180 \r\n\r\n" => Ok("180 ".into());
    response_no_reason_at_all: "SIP/2.0 180\r\n\r\n" => Ok("180 ".into());
    status_below_100: "SIP/2.0 099 Low\r\n\r\n" => Err(Error::BadStatusCode);
    status_above_699: "SIP/2.0 700 High\r\n\r\n" => Err(Error::BadStatusCode);
    status_four_digits: "SIP/2.0 2000 OK\r\n\r\n" => Err(Error::BadStatusCode);
    bare_lf_line_end: "OPTIONS sip:a@b SIP/2.0\nVia: x\r\n\r\n" => Err(Error::BareLineEnd);
    unterminated_datagram: "OPTIONS sip:a@b SIP/2.0\r\nl: 0\r\n" => Err(Error::HeadUnterminated);
}

cases! { header_names;
    compact_forms: "v: a\r\nf: b\r\nt: c\r\ni: d\r\nm: e\r\nl: 0\r\nk: g\r\ns: h\r\nc: i\r\ne: j"
        => Ok(["Via=a", "From=b", "To=c", "Call-ID=d", "Contact=e", "Content-Length=0", "Supported=g",
               "Subject=h", "Content-Type=i", "Content-Encoding=j"].map(String::from).to_vec());
    space_before_colon: "Call-ID   : x" => Ok(vec!["Call-ID=x".to_string()]);
    empty_value: "Subject:" => Ok(vec!["Subject=".to_string()]);
    folded_value: "Subject: a\r\n b" => Ok(vec!["Subject=a\r\n b".to_string()]);
    unknown_kept_as_written: "X-Cisco-Thing: 1" => Ok(vec!["X-Cisco-Thing=1".to_string()]);
    name_with_space: "Bad Name: x" => Err(Error::MissingColon);
    no_colon: "JustText" => Err(Error::MissingColon);
    empty_name: ": x" => Err(Error::BadHeaderName);
    bare_cr_in_value: "Subject: a\rb" => Err(Error::BareLineEnd);
    negative_length: "Content-Length: -1" => Err(Error::BadContentLength);
    huge_length: "Content-Length: 4294967296" => Err(Error::BadContentLength);
}

cases! { uri;
    plain: "sip:1010@10.10.10.1" => "sip user=Some(\"1010\") pw=None host=V4(10.10.10.1) port=None params=\"\" headers=None";
    sips_scheme_any_case: "SIPS:a@Example.com:5061" => "sips user=Some(\"a\") pw=None host=Name(\"Example.com\") port=Some(5061) params=\"\" headers=None";
    no_user: "sip:example.com;transport=tls" => "sip user=None pw=None host=Name(\"example.com\") port=None params=\";transport=tls\" headers=None";
    password: "sip:a:secret@h" => "sip user=Some(\"a\") pw=Some(\"secret\") host=Name(\"h\") port=None params=\"\" headers=None";
    headers: "sip:a@h?subject=x&priority=urgent" => "sip user=Some(\"a\") pw=None host=Name(\"h\") port=None params=\"\" headers=Some(\"subject=x&priority=urgent\")";
    port_too_big: "sip:a@h:65536" => "invalid";
    empty_port: "sip:a@h:" => "invalid";
    bad_escape: "sip:a%zz@h" => "invalid";
    empty_user: "sip:@h" => "invalid";
    empty_param: "sip:a@h;;lr" => "invalid";
    space_inside: "sip:a b@h" => "invalid";
    unclosed_ipv6: "sip:[::1" => "invalid";
    tel_uri: "tel:+1-201-555-0123" => "other tel";
    no_scheme: "example.com" => "invalid";
}

cases! { aor;
    aor_lowercases_host: "sip:1010@CUCM.Example.COM" => Some("sip:1010@cucm.example.com".into());
    aor_keeps_user_case: "sip:Alice@h" => Some("sip:Alice@h".into());
    aor_drops_params_password_headers: "sip:a:pw@h;transport=tls?x=y" => Some("sip:a@h".into());
    aor_keeps_port: "sip:a@h:5090" => Some("sip:a@h:5090".into());
    aor_unreserved_escapes_decode: "sip:%61%2a%25@h" => Some("sip:a*%25@h".into());
    aor_reserved_escapes_stay: "sip:a%3bb@h" => Some("sip:a%3Bb@h".into());
    aor_literal_reserved_differs: "sip:a;b@h" => Some("sip:a;b@h".into());
    aor_ipv6_rfc5952: "sip:a@[0:0:0:0:0:0:0:1]:5060" => Some("sip:a@[::1]:5060".into());
    aor_sips_differs: "sips:a@h" => Some("sips:a@h".into());
    aor_ipv6_lowercase: "sip:a@[2001:DB8::1]" => Some("sip:a@[2001:db8::1]".into());
    aor_ipv6_odd_form_kept: "sip:a@[2001:DB8:::192.0.2.1]" => Some("sip:a@[2001:db8:::192.0.2.1]".into());
    aor_of_non_sip: "tel:123" => None;
}

cases! { contacts;
    jabber_contact: "<sip:a8ae9f92@10.10.10.10:62162;transport=tls>;+sip.instance=\"<urn:uuid:00000000-0000-0000-0000-882323451234>\";+u.sip!devicename.ccm.cisco.com=\"CSFrado\";video"
        => Ok(vec!["sip:a8ae9f92@10.10.10.10:62162;transport=tls expires=None q=None instance=Some(\"<urn:uuid:00000000-0000-0000-0000-882323451234>\") device=Some(\"CSFrado\")".into()]);
    wildcard: "*" => Ok(vec!["*".into()]);
    list_with_expires_and_q: "<sip:a@h>;expires=60;q=0.5, \"X\" <sip:b@h>;expires=0"
        => Ok(vec!["sip:a@h expires=Some(60) q=Some(500) instance=None device=None".into(),
                   "sip:b@h expires=Some(0) q=None instance=None device=None".into()]);
    expires_too_big: "<sip:a@h>;expires=4294967296" => Err(Error::BadValue(HeaderName::Contact));
    q_too_big: "<sip:a@h>;q=1.1" => Err(Error::BadValue(HeaderName::Contact));
    trailing_comma: "<sip:a@h>," => Err(Error::BadValue(HeaderName::Contact));
    unclosed_bracket: "<sip:a@h" => Err(Error::BadValue(HeaderName::Contact));
    duplicate_expires: "<sip:a@h>;expires=0;expires=3600" => Err(Error::BadValue(HeaderName::Contact));
    duplicate_device_name: "<sip:a@h>;+u.sip!devicename.ccm.cisco.com=\"A\";+u.sip!devicename.ccm.cisco.com=\"B\"" => Err(Error::BadValue(HeaderName::Contact));
    duplicate_instance: "<sip:a@h>;+sip.instance=\"<urn:uuid:1>\";+sip.instance=\"<urn:uuid:2>\"" => Err(Error::BadValue(HeaderName::Contact));
    quoted_param_with_comma: "<sip:a@h>;x=\"a,b\", <sip:b@h>"
        => Ok(vec!["sip:a@h expires=None q=None instance=None device=None".into(),
                   "sip:b@h expires=None q=None instance=None device=None".into()]);
}

cases! { bearer;
    cisco_form: "Proxy-Authorization: Bearer token=\"eyJ.e30.sig\"" => Ok(Some(("Proxy-Authorization".into(), "eyJ.e30.sig".into())));
    rfc8898_form: "Authorization: Bearer eyJ.e30.sig" => Ok(Some(("Authorization".into(), "eyJ.e30.sig".into())));
    proxy_preferred: "Authorization: Bearer a.b.c\r\nProxy-Authorization: Bearer token=\"d.e.f\"" => Ok(Some(("Proxy-Authorization".into(), "d.e.f".into())));
    digest_skipped: "Proxy-Authorization: Digest username=\"x\"\r\nAuthorization: Bearer a.b.c" => Ok(Some(("Authorization".into(), "a.b.c".into())));
    none: "Expires: 5" => Ok(None);
    empty_bearer: "Authorization: Bearer" => Err(Error::BadValue(HeaderName::Authorization));
    unterminated_quote: "Proxy-Authorization: Bearer token=\"abc" => Err(Error::BadValue(HeaderName::ProxyAuthorization));
}

fn to_tag(lines: &str) -> Result<Option<String>, Error> {
    with_headers(lines, |m| {
        m.to()
            .map(|t| t.tag().map(|t| String::from_utf8_lossy(t).into_owned()))
    })?
}

cases! { to_tag;
    to_tag_value: "To: <sip:a@h>;tag=x" => Ok(Some("x".into()));
    to_tag_flag: "To: <sip:a@h>;tag" => Err(Error::BadValue(HeaderName::To));
    to_two_tags: "To: <sip:a@h>;tag=x;tag=y" => Err(Error::BadValue(HeaderName::To));
    to_no_tag: "To: <sip:a@h>;other" => Ok(None);
}

cases! { cseq;
    cseq_ok: "CSeq: 2271 REGISTER" => Ok((2271, "REGISTER".into()));
    cseq_folded: "CSeq: 0009\r\n  REGISTER" => Ok((9, "REGISTER".into()));
    cseq_limit: "CSeq: 2147483647 REGISTER" => Ok((2147483647, "REGISTER".into()));
    cseq_over_limit: "CSeq: 2147483648 REGISTER" => Err(Error::BadValue(HeaderName::CSeq));
    cseq_wrong_method: "CSeq: 1 INVITE" => Err(Error::CSeqMethodMismatch);
    cseq_no_method: "CSeq: 1" => Err(Error::BadValue(HeaderName::CSeq));
    cseq_missing: "Expires: 1" => Err(Error::Missing(HeaderName::CSeq));
    cseq_twice: "CSeq: 1 REGISTER\r\nCSeq: 2 REGISTER" => Err(Error::Duplicate(HeaderName::CSeq));
}

cases! { expires;
    expires_max: "Expires: 4294967295" => Ok(Some(u32::MAX));
    expires_over: "Expires: 4294967296" => Err(Error::BadValue(HeaderName::Expires));
    expires_absent: "CSeq: 1 REGISTER" => Ok(None);
    expires_junk: "Expires: soon" => Err(Error::BadValue(HeaderName::Expires));
}

cases! { vias;
    via_tls_with_port: "SIP/2.0/TLS 10.10.10.10:62162;branch=z9hG4bK00004a82"
        => Ok(vec!["TLS V4(10.10.10.10):Some(62162) branch=Some(\"z9hG4bK00004a82\") rport=None".into()]);
    via_rport_requested: "SIP/2.0/UDP h;rport;branch=z9hG4bK1"
        => Ok(vec!["UDP Name(\"h\"):None branch=Some(\"z9hG4bK1\") rport=Some(None)".into()]);
    via_comma_joined: "SIP/2.0/TCP a;branch=1 , SIP/2.0/UDP [::1]:5060;branch=2"
        => Ok(vec!["TCP Name(\"a\"):None branch=Some(\"1\") rport=None".into(),
                   "UDP V6(\"::1\"):Some(5060) branch=Some(\"2\") rport=None".into()]);
    via_wrong_version: "SIP/3.0/UDP h" => Err(Error::BadValue(HeaderName::Via));
    via_two_branches: "SIP/2.0/UDP h;branch=z9hG4bK1;branch=z9hG4bK2" => Err(Error::BadValue(HeaderName::Via));
    via_branch_without_value: "SIP/2.0/UDP h;branch" => Err(Error::BadValue(HeaderName::Via));
    via_no_host: "SIP/2.0/UDP ;branch=1" => Err(Error::BadValue(HeaderName::Via));
    via_junk_after: "SIP/2.0/UDP h junk" => Err(Error::BadValue(HeaderName::Via));
}

cases! { stream_status;
    partial_head: "REGISTER sip:a@b SIP/2.0\r\nVia: x\r\n" => Ok(None);
    partial_body: "REGISTER sip:a@b SIP/2.0\r\nl: 4\r\n\r\nab" => Ok(None);
    complete_with_extra: "REGISTER sip:a@b SIP/2.0\r\nl: 2\r\n\r\nabREGISTER" => Ok(Some(36));
    conflicting_lengths: "REGISTER sip:a@b SIP/2.0\r\nl: 2\r\nl: 3\r\n\r\nabc" => Err(Error::ConflictingContentLength);
    equal_lengths_twice: "REGISTER sip:a@b SIP/2.0\r\nl: 2\r\nContent-Length: 2\r\n\r\nab" => Ok(Some(55));
}

#[test]
fn too_many_headers_for_the_array() {
    let text = "OPTIONS sip:a@b SIP/2.0\r\na: 1\r\nb: 2\r\nc: 3\r\n\r\n";
    let mut hs = [EMPTY_HEADER; 2];
    assert_eq!(parse(text.as_bytes(), &mut hs), Err(Error::TooManyHeaders));
}

#[test]
fn reason_phrases_name_the_header_at_fault() {
    let mut out = Vec::new();
    Error::Missing(HeaderName::CallId).write_reason(&mut out);
    assert_eq!(out, b"Missing Call-ID");
    assert_eq!(
        Error::BadValue(HeaderName::Via).to_string(),
        "Malformed Via"
    );
    assert_eq!(
        Error::ConflictingContentLength.to_string(),
        "Conflicting Content-Length"
    );
    assert!(Error::BodyTooLarge.is_framing() && !Error::BadValue(HeaderName::To).is_framing());
}
