//! The workloads of `benches/parse.rs`, shared with `examples/parse_iters.rs` (the callgrind
//! driver) so both measure exactly the same code. Not a bench target itself: Cargo only
//! discovers `benches/*.rs` and `benches/*/main.rs`.
//!
//! Each `*_read` function does what a registrar does with one REGISTER: frame/parse it and read
//! every header it needs, typed. Every value read goes through `black_box`, and the function
//! returns a [`Summary`] so `check_*` can prove (once, outside the timed loop) that the path
//! measured is the success path and that both parsers saw the same message.

#![allow(dead_code)] // the bench and the example each use a subset

use criterion::black_box;
use regstorm::sip::{ContactValue, Frame, Framer, Header, HeaderName, Limits};
use rsip::prelude::*;
use std::error::Error;
use std::fmt::Write as _;

pub type Res<T> = Result<T, Box<dyn Error>>;

/// The seed's Jabber REGISTER with the sample token and the Cisco multipart body.
pub fn input() -> Vec<u8> {
    regstorm::load::jabber::seed_register(regstorm::load::jabber::SAMPLE_TOKEN)
}

/// What one pass read, reduced to numbers both parsers can be compared on.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Summary {
    pub vias: usize,
    pub branch_len: usize,
    pub from_tag_len: usize,
    pub aor_len: usize,
    pub call_id_len: usize,
    pub cseq: u32,
    pub contacts: usize,
    pub instance_len: usize,
    pub device_name_len: usize,
    pub contact_expires: Option<u32>,
    pub expires: u32,
    pub max_forwards: u32,
    pub content_length: u32,
    pub content_subtype_len: usize,
    pub require: usize,
    pub proxy_require: usize,
    pub supported: usize,
    pub token_len: usize,
}

/// Caller-owned state of the regstorm path, reused across iterations like a connection's.
#[derive(Debug)]
pub struct RegstormState {
    pub framer: Framer,
    /// Binding key buffer (cleared each pass).
    pub aor: Vec<u8>,
}

impl RegstormState {
    pub fn new() -> Self {
        RegstormState {
            framer: Framer::new(Limits::default()),
            aor: Vec::with_capacity(128),
        }
    }
}

/// regstorm: frame + parse into the caller's header array, then typed access to every header
/// the registrar reads.
#[inline(never)]
pub fn regstorm_read<'b>(
    st: &mut RegstormState,
    buf: &'b [u8],
    headers: &mut [Header<'b>],
) -> Res<Summary> {
    let msg = match st.framer.next(buf, headers)? {
        Frame::Message(m) => m,
        other => return Err(format!("not a complete message: {other:?}").into()),
    };
    let mut s = Summary::default();

    let ruri = msg.request_uri().ok_or("response, not request")??;
    black_box(ruri.sip().ok_or("Request-URI not sip:")?.host);

    let top = msg.top_via()?;
    s.branch_len = black_box(top.branch().ok_or("no branch")?).len();
    for via in msg.vias() {
        black_box(via?);
        s.vias += 1;
    }

    let from = msg.from()?;
    s.from_tag_len = black_box(from.tag().ok_or("no From tag")?).len();

    let to = msg.to()?;
    let to_uri = to.sip_uri().ok_or("To not sip:")?;
    st.aor.clear();
    regstorm::sip::write_aor(&to_uri, &mut st.aor);
    s.aor_len = black_box(&st.aor[..]).len();

    s.call_id_len = black_box(msg.call_id()?).len();
    s.cseq = black_box(msg.cseq()?).seq;

    for c in msg.contacts() {
        match c? {
            ContactValue::Addr(c) => {
                s.instance_len = black_box(c.instance()).map_or(0, <[u8]>::len);
                s.device_name_len = black_box(c.device_name()).map_or(0, <[u8]>::len);
                s.contact_expires = black_box(c.expires);
            }
            ContactValue::Wildcard => {
                black_box(());
            }
        }
        s.contacts += 1;
    }

    s.expires = black_box(msg.expires()?).ok_or("no Expires")?;
    s.max_forwards = u32::from(black_box(msg.max_forwards()?).ok_or("no Max-Forwards")?);
    s.content_length = black_box(msg.content_length).ok_or("no Content-Length")?;
    s.content_subtype_len = black_box(msg.content_type()?)
        .ok_or("no Content-Type")?
        .subtype
        .len();

    for (name, n) in [
        (HeaderName::Require, &mut s.require),
        (HeaderName::ProxyRequire, &mut s.proxy_require),
        (HeaderName::Supported, &mut s.supported),
    ] {
        for tag in msg.option_tags(name) {
            black_box(tag?);
            *n += 1;
        }
    }

    black_box(msg.date()?.ok_or("no Date")?);
    s.token_len = black_box(msg.bearer()?.ok_or("no Bearer")?).token.len();
    Ok(s)
}

/// rsip 0.4: `SipMessage::try_from` (which already builds an owned `Request` with every header
/// as an owned `String`), then the closest typed access rsip offers for the same headers.
///
/// What rsip 0.4 cannot give typed, so this reads it raw (plain `str` work on the value):
/// - Contact: typed parsing fails on quoted-string parameters (see below); only its URI is
///   typed, the parameters are split by hand.
/// - Proxy-Authorization: the typed form is Digest only (username/realm/nonce/uri/response are
///   mandatory), so `typed()` fails on Cisco's `Bearer token="..."`; the token is cut out of
///   the raw value here.
/// - Supported / Require / Proxy-Require: untyped only; split on `,` here.
/// - Date: untyped only (no date parsing); the raw value is read, not converted to a time.
/// - Canonical AOR: no equivalent of `write_aor`; built here from To's scheme, user and
///   host:port with `write!` into a reused `String` (no unescaping/case folding).
/// - Via: a typed Via holds one via-parm; comma-joined via-parms in one header are not split
///   (the seed has one Via, so the counts match).
#[inline(never)]
pub fn rsip_read(buf: &[u8], aor: &mut String) -> Res<Summary> {
    let msg = rsip::SipMessage::try_from(buf)?;
    let rsip::SipMessage::Request(req) = &msg else {
        return Err("response, not request".into());
    };
    let mut s = Summary::default();

    black_box(req.uri.host());

    let top = msg.via_header()?.typed()?;
    s.branch_len = black_box(top.branch().ok_or("no branch")?).value().len();

    let from = msg.from_header()?.typed()?;
    s.from_tag_len = black_box(from.tag().ok_or("no From tag")?).value().len();

    let to = msg.to_header()?.typed()?;
    aor.clear();
    let scheme = to.uri.scheme.as_ref().ok_or("To without scheme")?;
    match to.uri.user() {
        Some(user) => write!(aor, "{scheme}:{user}@{}", to.uri.host_with_port)?,
        None => write!(aor, "{scheme}:{}", to.uri.host_with_port)?,
    }
    s.aor_len = black_box(aor.as_str()).len();

    s.call_id_len = black_box(msg.call_id_header()?.value()).len();
    s.cseq = black_box(msg.cseq_header()?.typed()?).seq;

    // rsip 0.4's typed Contact (`Contact::typed`, and `uri()`/`params()`/`expires()`, which go
    // through it) fails on any quoted-string contact parameter (`model="503"` is enough), so it
    // cannot read a Jabber Contact (`+sip.instance="<urn:uuid:...>"`, RFC 5626). Closest
    // equivalent: rsip types the URI inside `<...>`; the header parameters are split by hand.
    for c in msg.contact_headers() {
        let v = c.value();
        let open = v.find('<').ok_or("Contact without <")?;
        let close = open + v[open..].find('>').ok_or("Contact without >")?;
        black_box(rsip::Uri::try_from(&v[open + 1..close])?);
        let (mut instance, mut device, mut expires) = (None, None, None);
        for p in v[close + 1..]
            .split(';')
            .map(str::trim)
            .filter(|p| !p.is_empty())
        {
            let (name, value) = p
                .split_once('=')
                .map_or((p, ""), |(n, v)| (n.trim(), v.trim()));
            let unquoted = value
                .strip_prefix('"')
                .and_then(|v| v.strip_suffix('"'))
                .unwrap_or(value);
            if name.eq_ignore_ascii_case("+sip.instance") {
                instance = Some(unquoted);
            } else if name.eq_ignore_ascii_case(regstorm::sip::DEVICE_NAME_PARAM) {
                device = Some(unquoted);
            } else if name.eq_ignore_ascii_case("expires") {
                expires = Some(value.parse::<u32>()?);
            }
        }
        s.instance_len = black_box(instance).map_or(0, str::len);
        s.device_name_len = black_box(device).map_or(0, str::len);
        s.contact_expires = black_box(expires);
        s.contacts += 1;
    }

    s.expires = black_box(msg.expires_header().ok_or("no Expires")?.seconds()?);
    s.max_forwards = black_box(msg.max_forwards_header()?.num()?);

    let mut content_length = None;
    let mut date = None;
    let mut token = None;
    for h in req.headers.iter() {
        match h {
            rsip::Header::Via(v) => {
                black_box(v.typed()?);
                s.vias += 1;
            }
            rsip::Header::ContentLength(cl) => content_length = Some(cl.length()?),
            rsip::Header::ContentType(ct) => {
                // rsip keeps `type/subtype` as one string (no split), `Sdp` for application/sdp.
                s.content_subtype_len = match black_box(ct.typed()?).0 {
                    rsip::typed::MediaType::Sdp(_) => "application/sdp".len(),
                    rsip::typed::MediaType::Other(name, _) => name.len(),
                };
            }
            rsip::Header::Require(v) => s.require += count_tags(v.value()),
            rsip::Header::ProxyRequire(v) => s.proxy_require += count_tags(v.value()),
            rsip::Header::Supported(v) => s.supported += count_tags(v.value()),
            rsip::Header::Date(d) => date = Some(black_box(d.value())),
            rsip::Header::ProxyAuthorization(pa) if token.is_none() => {
                token = Some(bearer_token(pa.value()).ok_or("Proxy-Authorization not Bearer")?);
            }
            _ => {}
        }
    }
    s.content_length = black_box(content_length).ok_or("no Content-Length")?;
    date.ok_or("no Date")?;
    s.token_len = black_box(token.ok_or("no Proxy-Authorization")?).len();
    Ok(s)
}

fn count_tags(v: &str) -> usize {
    v.split(',')
        .map(|t| black_box(t.trim()))
        .filter(|t| !t.is_empty())
        .count()
}

/// Cisco's `Bearer token="..."`, cut out of the raw value (rsip has no Bearer support).
fn bearer_token(v: &str) -> Option<&str> {
    let rest = v.trim_start();
    let (scheme, rest) = rest.split_once(char::is_whitespace)?;
    if !scheme.eq_ignore_ascii_case("Bearer") {
        return None;
    }
    let at = rest.find("token=\"")? + "token=\"".len();
    let end = rest[at..].find('"')?;
    Some(&rest[at..at + end])
}

/// The floor: finding the end of the head with a prebuilt SIMD searcher.
#[inline(never)]
pub fn memmem_floor(finder: &memchr::memmem::Finder<'_>, buf: &[u8]) -> Option<usize> {
    finder.find(buf)
}

/// What both paths must read from the seed's REGISTER. Panics otherwise.
fn expect_seed(s: &Summary, who: &str) {
    let token = regstorm::load::jabber::SAMPLE_TOKEN;
    let want = Summary {
        vias: 1,
        branch_len: "z9hG4bK00004a82".len(),
        from_tag_len: "882323451234089000003bdd-00005eff".len(),
        aor_len: "sip:1010@10.10.10.1".len(),
        call_id_len: "88232345-12340017-00001c0b-00000cfa@10.10.10.10".len(),
        cseq: 2271,
        contacts: 1,
        instance_len: "<urn:uuid:00000000-0000-0000-0000-882323451234>".len(),
        device_name_len: "CSFrado".len(),
        contact_expires: None,
        expires: 3600,
        max_forwards: 70,
        content_length: regstorm::load::jabber::CISCO_BODY_LEN as u32,
        content_subtype_len: 0, // checked per parser below
        require: 0,
        proxy_require: 0,
        supported: 17,
        token_len: token.len(),
    };
    let got = Summary {
        content_subtype_len: 0,
        ..s.clone()
    };
    assert_eq!(got, want, "{who} read the seed REGISTER differently");
}

/// Runs the regstorm path once and asserts it is the success path with the seed's values.
pub fn check_regstorm(buf: &[u8]) {
    let mut st = RegstormState::new();
    let mut headers = [regstorm::sip::EMPTY_HEADER; 64];
    let s = regstorm_read(&mut st, buf, &mut headers).unwrap_or_else(|e| panic!("regstorm: {e}"));
    expect_seed(&s, "regstorm");
    assert_eq!(s.content_subtype_len, "mixed".len());
    assert_eq!(st.aor, b"sip:1010@10.10.10.1");
    // The values behind the lengths, checked once.
    let mut headers = [regstorm::sip::EMPTY_HEADER; 64];
    let msg = regstorm::sip::parse(buf, &mut headers)
        .unwrap()
        .complete()
        .unwrap();
    assert_eq!(msg.len(), buf.len());
    assert_eq!(
        msg.bearer().unwrap().unwrap().token,
        regstorm::load::jabber::SAMPLE_TOKEN.as_bytes()
    );
    assert_eq!(msg.date().unwrap(), Some(1_585_566_199));
    // A second pass with the same state (as in the timed loop) must give the same result.
    let mut headers = [regstorm::sip::EMPTY_HEADER; 64];
    assert_eq!(regstorm_read(&mut st, buf, &mut headers).unwrap(), s);
}

/// Runs the rsip path once and asserts it is the success path with the seed's values.
pub fn check_rsip(buf: &[u8]) {
    let mut aor = String::with_capacity(128);
    let s = rsip_read(buf, &mut aor).unwrap_or_else(|e| panic!("rsip: {e}"));
    expect_seed(&s, "rsip");
    assert_eq!(s.content_subtype_len, "multipart/mixed".len());
    assert_eq!(aor, "sip:1010@10.10.10.1");
    let msg = rsip::SipMessage::try_from(buf).unwrap();
    assert_eq!(msg.body().len(), regstorm::load::jabber::CISCO_BODY_LEN);
}

/// The floor finds the real end of head.
pub fn check_memmem(buf: &[u8]) {
    let finder = memchr::memmem::Finder::new(b"\r\n\r\n");
    let mut headers = [regstorm::sip::EMPTY_HEADER; 64];
    let msg = regstorm::sip::parse(buf, &mut headers)
        .unwrap()
        .complete()
        .unwrap();
    assert_eq!(memmem_floor(&finder, buf), Some(msg.head_len - 4));
}
