//! The registrar's decision per request, with a fake clock: one test per row of the contract's
//! outcome table and per RFC 3261 §10.3 step, on the seed's Jabber REGISTER.

use regstorm::auth::{generate_pkcs8, Alg, KeySet, Policy, Signer, TokenClaims, Verifier};
use regstorm::config::{ChallengeKind, ListenerKind, RegistrarSection};
use regstorm::load::jabber::Register;
use regstorm::registrar::{Facts, Outcome, Registrar};
use regstorm::sip::{parse, ContactValue, HeaderName, StartLine, EMPTY_HEADER};
use std::sync::Arc;

const NOW: u64 = 1_800_000_000;

struct Lab {
    signer: Signer,
    registrar: Registrar,
}

fn section() -> RegistrarSection {
    RegistrarSection {
        domain: Some("10.10.10.1".into()),
        max_contacts: 2,
        cores: 1,
        ..RegistrarSection::default()
    }
}

fn lab_with(cfg: RegistrarSection) -> Lab {
    let signer = Signer::from_pkcs8(&generate_pkcs8(Alg::EdDSA).unwrap(), "k").unwrap();
    let keys = Arc::new(KeySet::new(vec![signer.public_key().clone()]));
    let verifier = Verifier::new(
        keys,
        Policy {
            leeway_s: 30,
            ..Policy::default()
        },
        1000,
    );
    Lab {
        signer,
        registrar: Registrar::new(cfg, verifier),
    }
}

fn lab() -> Lab {
    lab_with(section())
}

impl Lab {
    fn token(&self, sub: &str, dev: Option<&str>) -> &'static str {
        let t = self.signer.mint(&TokenClaims {
            sub,
            exp: NOW + 3600,
            iat: NOW,
            dev,
            ..TokenClaims::default()
        });
        Box::leak(t.into_boxed_str())
    }

    /// Sends `wire` and returns (status, response text).
    fn send_on(&mut self, wire: &[u8], conn: u64, now: u64) -> (u16, String) {
        let mut hs = [EMPTY_HEADER; 64];
        let msg = parse(wire, &mut hs)
            .unwrap()
            .complete()
            .expect("complete request");
        let facts = Facts {
            listener: ListenerKind::Oauth,
            conn,
            source: None,
        };
        let mut out = Vec::new();
        let outcome = self.registrar.handle(&msg, &facts, now, &mut out);
        let text = String::from_utf8(out).unwrap();
        let mut hs2 = [EMPTY_HEADER; 64];
        let resp = parse(text.as_bytes(), &mut hs2)
            .unwrap()
            .complete()
            .expect("the response parses");
        let StartLine::Response { code, .. } = resp.start else {
            panic!("not a response")
        };
        assert_eq!(outcome, Outcome::Replied(code));
        assert_eq!(resp.len(), text.len(), "one response, framed");
        // Every response echoes the transaction and carries a To tag.
        assert_eq!(resp.call_id().unwrap(), msg.call_id().unwrap());
        assert_eq!(resp.header(HeaderName::CSeq), msg.header(HeaderName::CSeq));
        assert!(resp.to().unwrap().tag().is_some());
        (code, text)
    }

    fn send(&mut self, wire: &[u8]) -> (u16, String) {
        self.send_on(wire, 1, NOW)
    }
}

fn register(token: Option<&'static str>, cseq: u32, expires: u32) -> Vec<u8> {
    let mut r = Register::seed("x");
    r.token = token;
    r.cseq = cseq;
    r.expires = expires;
    r.body = false;
    let mut out = Vec::new();
    r.write(&mut out, &[]);
    out
}

/// The seed REGISTER with header lines edited: `(from, to)` replacements on the text.
fn edited(wire: &[u8], edits: &[(&str, &str)]) -> Vec<u8> {
    let mut s = String::from_utf8(wire.to_vec()).unwrap();
    for (from, to) in edits {
        assert!(s.contains(from), "{from:?} not in the request");
        s = s.replacen(from, to, 1);
    }
    s.into_bytes()
}

#[test]
fn jabber_flow_407_then_200_with_expires_120() {
    let mut l = lab();
    let (code, text) = l.send(&register(None, 2270, 3600));
    assert_eq!(code, 407);
    assert!(
        text.contains("\r\nProxy-Authenticate: Bearer realm=\"ccmsipline\"\r\n"),
        "{text}"
    );
    let token = l.token("1010", Some("CSFrado"));
    let (code, text) = l.send(&register(Some(token), 2271, 3600));
    assert_eq!(code, 200, "{text}");
    assert!(
        text.contains("\r\nExpires: 120\r\n"),
        "clamped to max_expires: {text}"
    );
    assert!(
        text.contains(";+u.sip!devicename.ccm.cisco.com=\"CSFrado\""),
        "{text}"
    );
    assert!(text.contains(";expires=120\r\n"), "{text}");
    assert!(text.contains("\r\nServer: regstorm/"), "{text}");
    assert!(text.contains("\r\nDate: "), "{text}");
    assert_eq!(l.registrar.bindings().len(), 1);
}

#[test]
fn challenge_www_answers_401() {
    let mut l = lab_with(RegistrarSection {
        challenge: ChallengeKind::Www,
        ..section()
    });
    let (code, text) = l.send(&register(None, 1, 3600));
    assert_eq!(code, 401);
    assert!(
        text.contains("\r\nWWW-Authenticate: Bearer realm=\"ccmsipline\"\r\n"),
        "{text}"
    );
}

#[test]
fn bad_token_gets_invalid_token() {
    let mut l = lab();
    let (code, text) = l.send(&register(Some("eyJhbGciOiJub25lIn0.e30.x"), 1, 3600));
    assert_eq!(code, 407);
    assert!(
        text.contains("Bearer realm=\"ccmsipline\", error=\"invalid_token\""),
        "{text}"
    );
    let expired = Box::leak(
        l.signer
            .mint(&TokenClaims {
                sub: "1010",
                exp: NOW - 100,
                ..TokenClaims::default()
            })
            .into_boxed_str(),
    );
    let (code, text) = l.send(&register(Some(expired), 2, 3600));
    assert_eq!(code, 407, "{text}");
    assert!(text.contains("error=\"invalid_token\""));
}

#[test]
fn token_for_another_user_or_device_is_403() {
    let mut l = lab();
    let t = l.token("2000", None);
    assert_eq!(l.send(&register(Some(t), 1, 3600)).0, 403);
    let t = l.token("1010", Some("CSFother"));
    assert_eq!(l.send(&register(Some(t), 2, 3600)).0, 403);
    // A line the token lists covers the AOR.
    let t = Box::leak(
        l.signer
            .mint(&TokenClaims {
                sub: "alice",
                lines: &["1010"],
                exp: NOW + 600,
                ..TokenClaims::default()
            })
            .into_boxed_str(),
    );
    assert_eq!(l.send(&register(Some(t), 3, 3600)).0, 200);
}

#[test]
fn request_uri_rules_416_and_404() {
    let mut l = lab();
    let t = l.token("1010", None);
    let tel = edited(
        &register(Some(t), 1, 3600),
        &[(
            "REGISTER sip:10.10.10.1 SIP/2.0",
            "REGISTER tel:+15551234 SIP/2.0",
        )],
    );
    assert_eq!(l.send(&tel).0, 416);
    let other = edited(
        &register(Some(t), 2, 3600),
        &[(
            "REGISTER sip:10.10.10.1 SIP/2.0",
            "REGISTER sip:10.10.10.2 SIP/2.0",
        )],
    );
    assert_eq!(l.send(&other).0, 404);
}

#[test]
fn to_must_be_sip() {
    let mut l = lab();
    let t = l.token("1010", None);
    let w = edited(
        &register(Some(t), 1, 3600),
        &[("To: <sip:1010@10.10.10.1>", "To: <tel:1010>")],
    );
    let (code, text) = l.send(&w);
    assert_eq!(code, 400);
    assert!(
        text.starts_with("SIP/2.0 400 To Is Not A SIP URI\r\n"),
        "{text}"
    );
}

#[test]
fn unsupported_require_is_420_with_unsupported() {
    let mut l = lab();
    let t = l.token("1010", None);
    let w = edited(
        &register(Some(t), 1, 3600),
        &[(
            "Max-Forwards: 70\r\n",
            "Max-Forwards: 70\r\nRequire: path, 100rel\r\nProxy-Require: foo\r\n",
        )],
    );
    let (code, text) = l.send(&w);
    assert_eq!(code, 420);
    assert!(text.contains("\r\nUnsupported: 100rel, foo\r\n"), "{text}");
}

#[test]
fn expires_below_min_is_423() {
    let mut l = lab();
    let t = l.token("1010", None);
    let (code, text) = l.send(&register(Some(t), 1, 30));
    assert_eq!(code, 423);
    assert!(text.contains("\r\nMin-Expires: 60\r\n"), "{text}");
}

#[test]
fn expiry_zero_removes_and_fetch_lists() {
    let mut l = lab();
    let t = l.token("1010", None);
    assert_eq!(l.send(&register(Some(t), 1, 120)).0, 200);
    // A fetch (no Contact) lists the binding with its remaining time.
    let fetch = edited(
        &register(Some(t), 2, 120),
        &[("Contact: ", "X-Was-Contact: ")],
    );
    let (code, text) = l.send_on(&fetch, 1, NOW + 20);
    assert_eq!(code, 200);
    assert!(text.contains(";expires=100\r\n"), "{text}");
    assert!(
        !text.contains("\r\nExpires:"),
        "a fetch grants nothing: {text}"
    );
    let (code, text) = l.send(&register(Some(t), 3, 0));
    assert_eq!(code, 200);
    assert!(!text.contains("\r\nContact:"), "{text}");
    assert_eq!(l.registrar.bindings().len(), 0);
}

#[test]
fn wildcard_rules() {
    let mut l = lab();
    let t = l.token("1010", None);
    assert_eq!(l.send(&register(Some(t), 1, 120)).0, 200);
    let contact_line = |w: &[u8]| {
        let s = String::from_utf8(w.to_vec()).unwrap();
        s.lines()
            .find(|l| l.starts_with("Contact: "))
            .unwrap()
            .to_string()
    };
    let base = register(Some(t), 2, 120);
    let line = contact_line(&base);
    let star_nonzero = edited(&base, &[(&line, "Contact: *")]);
    assert_eq!(l.send(&star_nonzero).0, 400, "* needs Expires: 0");
    let star = edited(&register(Some(t), 3, 0), &[(&line, "Contact: *")]);
    assert_eq!(l.send(&star).0, 200);
    assert_eq!(l.registrar.bindings().len(), 0);
}

#[test]
fn lower_cseq_on_same_call_id_is_500() {
    let mut l = lab();
    let t = l.token("1010", None);
    assert_eq!(l.send(&register(Some(t), 10, 120)).0, 200);
    assert_eq!(l.send(&register(Some(t), 10, 120)).0, 500);
    assert_eq!(l.send(&register(Some(t), 9, 120)).0, 500);
    assert_eq!(l.send(&register(Some(t), 11, 120)).0, 200);
}

#[test]
fn too_many_contacts_is_503_with_retry_after() {
    let mut l = lab();
    let t = l.token("1010", None);
    for (i, cseq) in [(1, 1), (2, 2)] {
        let w = edited(
            &register(Some(t), cseq, 120),
            &[
                ("a8ae9f92", &format!("c{i}")),
                (
                    "00000000-0000-0000-0000-882323451234",
                    &format!("00000000-0000-0000-0000-00000000000{i}"),
                ),
            ],
        );
        assert_eq!(l.send(&w).0, 200);
    }
    let w = edited(
        &register(Some(t), 3, 120),
        &[
            ("a8ae9f92", "c3"),
            (
                "00000000-0000-0000-0000-882323451234",
                "00000000-0000-0000-0000-000000000003",
            ),
        ],
    );
    let (code, text) = l.send(&w);
    assert_eq!(code, 503);
    assert!(text.contains("\r\nRetry-After: 35\r\n"), "{text}");
    assert_eq!(
        l.registrar.bindings().len(),
        2,
        "a refused request changes no binding"
    );
}

#[test]
fn methods_options_405_501_and_responses_dropped() {
    let mut l = lab();
    let t = l.token("1010", None);
    let opts = edited(
        &register(Some(t), 1, 120),
        &[
            ("REGISTER sip:", "OPTIONS sip:"),
            ("CSeq: 1 REGISTER", "CSeq: 1 OPTIONS"),
        ],
    );
    let (code, text) = l.send(&opts);
    assert_eq!(code, 200);
    assert!(text.contains("\r\nAllow: REGISTER, OPTIONS\r\n"), "{text}");
    let invite = edited(
        &register(Some(t), 1, 120),
        &[
            ("REGISTER sip:", "INVITE sip:"),
            ("CSeq: 1 REGISTER", "CSeq: 1 INVITE"),
        ],
    );
    assert_eq!(l.send(&invite).0, 405);
    let unknown = edited(
        &register(Some(t), 1, 120),
        &[("REGISTER sip:", "FROB sip:")],
    );
    assert_eq!(
        l.send(&unknown).0,
        501,
        "unknown method first, even with a CSeq mismatch"
    );
    // A response is not answered.
    let resp = b"SIP/2.0 200 OK\r\nVia: SIP/2.0/TLS h;branch=z9hG4bK1\r\nCall-ID: c\r\nCSeq: 1 REGISTER\r\nl: 0\r\n\r\n";
    let mut hs = [EMPTY_HEADER; 8];
    let m = parse(resp, &mut hs).unwrap().complete().unwrap();
    let facts = Facts {
        listener: ListenerKind::Tcp,
        conn: 1,
        source: None,
    };
    assert_eq!(
        l.registrar.handle(&m, &facts, NOW, &mut Vec::new()),
        Outcome::Dropped
    );
}

#[test]
fn missing_mandatory_header_is_400_naming_it() {
    let mut l = lab();
    let t = l.token("1010", None);
    let w = edited(&register(Some(t), 1, 120), &[("Call-ID: ", "X-Call-ID: ")]);
    let mut hs = [EMPTY_HEADER; 64];
    let msg = parse(&w, &mut hs).unwrap().complete().unwrap();
    let mut out = Vec::new();
    let facts = Facts {
        listener: ListenerKind::Oauth,
        conn: 1,
        source: None,
    };
    assert_eq!(
        l.registrar.handle(&msg, &facts, NOW, &mut out),
        Outcome::Replied(400)
    );
    assert!(String::from_utf8(out)
        .unwrap()
        .starts_with("SIP/2.0 400 Missing Call-ID\r\n"));
}

#[test]
fn path_is_kept_and_echoed() {
    let mut l = lab();
    let t = l.token("1010", None);
    let w = edited(
        &register(Some(t), 1, 120),
        &[(
            "Max-Forwards: 70\r\n",
            "Max-Forwards: 70\r\nPath: <sip:expc1.example.com;lr>\r\n",
        )],
    );
    let (code, text) = l.send(&w);
    assert_eq!(code, 200);
    assert!(
        text.contains("\r\nPath: <sip:expc1.example.com;lr>\r\n"),
        "{text}"
    );
    assert!(text.contains("\r\nSupported: path\r\n"), "{text}");
}

#[test]
fn bindings_die_with_their_connection_and_with_time() {
    let mut l = lab();
    let t = l.token("1010", None);
    assert_eq!(l.send_on(&register(Some(t), 1, 120), 7, NOW).0, 200);
    assert_eq!(l.registrar.connection_closed(8), 0);
    assert_eq!(l.registrar.connection_closed(7), 1);
    assert_eq!(l.registrar.bindings().len(), 0);
    assert_eq!(l.send_on(&register(Some(t), 2, 120), 9, NOW).0, 200);
    let removed = l.registrar.bindings().purge(NOW + 60);
    let next = l.registrar.bindings().next_expiry();
    assert_eq!((removed, next), (0, Some(NOW + 120)));
    assert_eq!(l.registrar.bindings().purge(NOW + 120), 1);
}

#[test]
fn reregistration_with_the_same_instance_replaces_the_binding() {
    let mut l = lab();
    let t = l.token("1010", None);
    assert_eq!(l.send(&register(Some(t), 1, 120)).0, 200);
    // Jabber reconnected: new source port in the Contact URI, same +sip.instance.
    let w = edited(
        &register(Some(t), 2, 120),
        &[("10.10.10.10:62162;transport", "10.10.10.10:62999;transport")],
    );
    let (code, text) = l.send(&w);
    assert_eq!(code, 200);
    assert_eq!(text.matches("\r\nContact: ").count(), 1, "{text}");
    assert!(text.contains(":62999;"), "{text}");
    let mut hs = [EMPTY_HEADER; 64];
    let resp = parse(text.as_bytes(), &mut hs).unwrap().complete().unwrap();
    let contacts: Vec<_> = resp.contacts().collect::<Result<_, _>>().unwrap();
    let ContactValue::Addr(c) = contacts[0] else {
        panic!()
    };
    assert_eq!(c.expires, Some(120));
    assert_eq!(resp.header(HeaderName::Expires), Some(&b"120"[..]));
}

#[test]
fn several_contacts_in_one_request_apply_in_order() {
    let mut l = lab();
    let t = l.token("1010", None);
    let two = |cseq: u32, a_expires: &str| {
        let base = register(Some(t), cseq, 120);
        let s = String::from_utf8(base.clone()).unwrap();
        let line = s
            .lines()
            .find(|l| l.starts_with("Contact: "))
            .unwrap()
            .to_string();
        let a = line
            .replace("a8ae9f92", "aaaa")
            .replace("882323451234", "00000000000a")
            + a_expires;
        let b = line
            .replace("a8ae9f92", "bbbb")
            .replace("882323451234", "00000000000b");
        edited(
            &base,
            &[(
                &line,
                &format!("{a}\r\nContact: {}", &b["Contact: ".len()..]),
            )],
        )
    };
    let (code, text) = l.send(&two(1, ""));
    assert_eq!(code, 200, "{text}");
    assert_eq!(l.registrar.bindings().len(), 2);
    // A leaves (expires=0) while B refreshes, in one request.
    let (code, text) = l.send(&two(2, ";expires=0"));
    assert_eq!(code, 200, "{text}");
    assert_eq!(text.matches("\r\nContact: ").count(), 1, "{text}");
    assert!(text.contains("<sip:bbbb-"), "{text}");
    assert_eq!(l.registrar.bindings().len(), 1);
}

#[test]
fn directory_port_mismatch_is_ucm_403_with_retry_after_and_warning() {
    use regstorm::config::UnknownDevices;
    use regstorm::registrar::Directory;
    let mut l = lab();
    let dir = "[[device]]\nname = \"CSFrado\"\nports = [\"mra\"]\n";
    l.registrar.set_directory(Some(
        Directory::parse(dir, "devices.toml", UnknownDevices::Deny).unwrap(),
    ));
    let t = l.token("1010", Some("CSFrado"));
    let (code, text) = l.send(&register(Some(t), 1, 120));
    assert_eq!(code, 403);
    assert!(text.contains("\r\nRetry-After: 35\r\n"), "{text}");
    assert!(
        text.contains("\r\nWarning: 399 10.10.10.1 \"SIP OAuth Registration port Mismatch\"\r\n"),
        "{text}"
    );
    // On the MRA listener the same device registers.
    let mut hs = [EMPTY_HEADER; 64];
    let wire = register(Some(t), 2, 120);
    let msg = parse(&wire, &mut hs).unwrap().complete().unwrap();
    let facts = Facts {
        listener: ListenerKind::Mra,
        conn: 2,
        source: None,
    };
    assert_eq!(
        l.registrar.handle(&msg, &facts, NOW, &mut Vec::new()),
        Outcome::Replied(200)
    );
    // A device the directory does not list, with unknown_devices = "deny".
    let other = edited(
        &register(Some(l.token("1010", None)), 3, 120),
        &[("\"CSFrado\"", "\"CSFnew\"")],
    );
    let (code, text) = l.send(&other);
    assert_eq!(code, 403);
    assert!(
        !text.contains("Retry-After"),
        "unknown devices are parked, not retried: {text}"
    );
}

#[test]
fn registrars_of_several_cores_share_one_binding_table() {
    use regstorm::registrar::Bindings;
    let l = lab();
    let shared = Arc::new(Bindings::new(8));
    let keys = Arc::new(KeySet::new(vec![l.signer.public_key().clone()]));
    let core = |b: &Arc<Bindings>| {
        Registrar::with_bindings(
            section(),
            Verifier::new(keys.clone(), Policy::default(), 100),
            Arc::clone(b),
        )
    };
    let (mut a, mut b) = (core(&shared), core(&shared));
    let t = l.token("1010", None);
    let facts = |conn| Facts {
        listener: ListenerKind::Oauth,
        conn,
        source: None,
    };
    let send = |r: &mut Registrar, wire: &[u8], conn| {
        let mut hs = [EMPTY_HEADER; 64];
        let msg = parse(wire, &mut hs).unwrap().complete().unwrap();
        let mut out = Vec::new();
        let outcome = r.handle(&msg, &facts(conn), NOW, &mut out);
        (outcome, String::from_utf8(out).unwrap())
    };
    assert_eq!(
        send(&mut a, &register(Some(t), 5, 120), 1).0,
        Outcome::Replied(200)
    );
    assert!(Arc::ptr_eq(a.bindings(), b.bindings()));
    assert_eq!(b.bindings().len(), 1);
    // The other core sees the binding: a stale CSeq is refused there too.
    assert_eq!(
        send(&mut b, &register(Some(t), 5, 120), 2).0,
        Outcome::Replied(500)
    );
    let (outcome, text) = send(&mut b, &register(Some(t), 6, 120), 2);
    assert_eq!(outcome, Outcome::Replied(200));
    assert_eq!(text.matches("\r\nContact: ").count(), 1, "{text}");
    // The binding moved to connection 2: closing connection 1 on core A removes nothing.
    assert_eq!(a.connection_closed(1), 0);
    let aor =
        regstorm::sip::Aor::new(&regstorm::sip::SipUri::parse(b"sip:1010@10.10.10.1").unwrap());
    let listed = shared.list(&aor, NOW + 20);
    assert_eq!(listed.len(), 1);
    assert_eq!(listed[0].expires_in, 100);
    assert_eq!(listed[0].device.as_deref(), Some("CSFrado"));
    assert_eq!(a.connection_closed(2), 1);
    assert!(shared.is_empty());
}

#[test]
fn overloaded_core_sheds_new_tokens_with_503_but_serves_cached_ones() {
    use regstorm::registrar::{Admission, AdmissionConfig};
    let mut l = lab();
    let known = l.token("1010", None);
    assert_eq!(l.send(&register(Some(known), 1, 120)).0, 200);
    // A core with no verification budget left.
    let spent = AdmissionConfig {
        share_start: 0.0,
        retry_max_s: 35,
        ..AdmissionConfig::default()
    };
    l.registrar.set_admission(Admission::new(spent, 7));
    // A token never verified: not judged, 503 with Retry-After (not a 407: it may be fine).
    let fresh = l.token("1010", Some("CSFrado"));
    let (code, text) = l.send(&register(Some(fresh), 2, 120));
    assert_eq!(code, 503, "{text}");
    let after: u32 = text
        .split("\r\nRetry-After: ")
        .nth(1)
        .and_then(|r| r.split("\r\n").next())
        .and_then(|v| v.parse().ok())
        .unwrap_or_else(|| panic!("no Retry-After: {text}"));
    assert!((1..=35).contains(&after), "{text}");
    assert_eq!(l.registrar.verifier().stats().shed, 1);
    assert_eq!(l.registrar.admission().stats().verify_shed, 1);
    // The cached one keeps registering, and asks admission nothing.
    assert_eq!(l.send(&register(Some(known), 3, 120)).0, 200);
    assert_eq!(l.registrar.admission().stats().verify_shed, 1);
    // A token that does not even decode is refused (407) without a verification to shed.
    let (code, _) = l.send(&register(Some("not.a.token"), 4, 120));
    assert_eq!(code, 407);
    assert_eq!(l.registrar.admission().stats().verify_shed, 1);
    // Budget again: the fresh token verifies, and was never remembered as a failure.
    l.registrar
        .set_admission(Admission::new(AdmissionConfig::default(), 7));
    assert_eq!(l.send(&register(Some(fresh), 5, 120)).0, 200);
}

/// A bodiless request of `method` with the given Request-URI, From and To.
fn request(method: &str, ruri: &str, from: &str, to: &str) -> Vec<u8> {
    format!(
        "{method} {ruri} SIP/2.0\r\nVia: SIP/2.0/TLS 10.0.0.5:5061;branch=z9hG4bK-{method}\r\n\
         Max-Forwards: 70\r\nFrom: {from}\r\nTo: {to}\r\nCall-ID: rule-{method}@10.0.0.5\r\n\
         CSeq: 1 {method}\r\nContent-Length: 0\r\n\r\n"
    )
    .into_bytes()
}

/// The status line answering `wire` (whose To may be too broken for `Lab::send`'s checks).
fn status_line(l: &mut Lab, wire: &[u8]) -> String {
    let mut hs = [EMPTY_HEADER; 64];
    let msg = parse(wire, &mut hs).unwrap().complete().expect("complete");
    let facts = Facts {
        listener: ListenerKind::Oauth,
        conn: 1,
        source: None,
    };
    let mut out = Vec::new();
    l.registrar.handle(&msg, &facts, NOW, &mut out);
    let text = String::from_utf8(out).unwrap();
    text.split("\r\n").next().unwrap().to_string()
}

/// An RFC 4475 message from tests/conformance/rfc4475.
fn rfc4475(file: &str) -> Vec<u8> {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/conformance/rfc4475")
        .join(file);
    std::fs::read(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

const METHODS: &[&str] = &[
    "OPTIONS",
    "INVITE",
    "BYE",
    "CANCEL",
    "SUBSCRIBE",
    "REGISTER",
];

/// RFC 3261 §8.2.2.1: a Request-URI scheme the registrar does not serve is 416 on every
/// method, not only REGISTER (RFC 4475 §3.3.2 and §3.3.3 send OPTIONS); an unknown method is
/// still 501 first (§3.1.2.18), and a Request-URI that does not parse is 400.
#[test]
fn unsupported_uri_scheme_is_416_on_every_method() {
    let mut l = lab();
    let (from, to) = ("<sip:1010@10.10.10.1>;tag=f1", "<sip:1010@10.10.10.1>");
    for ruri in [
        "tel:+15551234",
        "http://10.10.10.1/x",
        "im:1010@10.10.10.1",
        "nobodyKnowsThisScheme:totallyopaquecontent",
    ] {
        for method in METHODS {
            let w = request(method, ruri, from, to);
            assert_eq!(
                status_line(&mut l, &w),
                "SIP/2.0 416 Unsupported URI Scheme",
                "{method} {ruri}"
            );
        }
        let w = request("FROB", ruri, from, to);
        assert_eq!(status_line(&mut l, &w), "SIP/2.0 501 Not Implemented");
    }
    for method in METHODS {
        let w = request(method, "sip:1010@10.10.10.1?Route=%3Csip:x%3E", from, to);
        assert_eq!(
            status_line(&mut l, &w),
            "SIP/2.0 400 Malformed Request-URI",
            "{method}"
        );
    }
    for file in ["unkscm.sip", "novelsc.sip"] {
        assert_eq!(
            status_line(&mut l, &rfc4475(file)),
            "SIP/2.0 416 Unsupported URI Scheme",
            "{file}"
        );
    }
}

/// RFC 3261 §8.1.1, §20.20, §20.39: a To or From that is not a name-addr or addr-spec with a
/// URI is 400 naming the header, on every method, not only REGISTER (RFC 4475 §3.1.2.6,
/// §3.1.2.14, §3.1.2.15).
#[test]
fn malformed_to_or_from_is_400_naming_it_on_every_method() {
    let mut l = lab();
    let good = "<sip:1010@10.10.10.1>";
    let broken = [
        "\"Watson, Thomas\" < sip:t.watson@example.org >",
        "Watson, Thomas <sip:t.watson@example.org>",
        "\"Mr. J. User <sip:j.user@example.com>",
        "<sip:1010@10.10.10.1",
        "sip:1010@10.10.10.1 trailing",
    ];
    for bad in broken {
        for method in METHODS {
            let w = request(method, "sip:10.10.10.1", good, bad);
            assert_eq!(
                status_line(&mut l, &w),
                "SIP/2.0 400 Malformed To",
                "{method} To: {bad}"
            );
            let w = request(method, "sip:10.10.10.1", &format!("{bad};tag=f1"), good);
            assert_eq!(
                status_line(&mut l, &w),
                "SIP/2.0 400 Malformed From",
                "{method} From: {bad}"
            );
        }
    }
    // A To of another scheme is well formed: only a registrar's AOR must be SIP.
    let w = request("OPTIONS", "sip:10.10.10.1", good, "<tel:+15551234>");
    assert_eq!(status_line(&mut l, &w), "SIP/2.0 200 OK");
    for (file, want) in [
        ("badaspec.sip", "SIP/2.0 400 Malformed To"),
        ("quotbal.sip", "SIP/2.0 400 Malformed To"),
    ] {
        assert_eq!(status_line(&mut l, &rfc4475(file)), want, "{file}");
    }
    // baddn.sip as published lacks its final empty line (tests/corpus.rs); closed, its To
    // and From are both broken and To is named first.
    let mut w = rfc4475("baddn.sip");
    w.extend_from_slice(b"\r\n");
    assert_eq!(status_line(&mut l, &w), "SIP/2.0 400 Malformed To");
}
