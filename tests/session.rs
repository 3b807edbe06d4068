//! Sessions without sockets: a rustls client and the registrar's session talk through byte
//! buffers (STYLE.md 8). TLS with lab certificates, the 407 -> 200 flow, pipelining, a REGISTER
//! trickled a few bytes at a time, keep-alive pings, framing errors, timeouts.

use regstorm::auth::{Alg, KeySet, Policy, Signer, TokenClaims, Verifier};
use regstorm::config::{Limits, ListenerKind, RegistrarSection};
use regstorm::load::jabber::{cisco_body, Register};
use regstorm::registrar::{Facts, Registrar};
use regstorm::session::{CloseReason, Session};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName};
use std::io::{Read, Write};
use std::sync::Arc;

const NOW_MS: u64 = 1_800_000_000_000;

struct Lab {
    server: Arc<rustls::ServerConfig>,
    client: Arc<rustls::ClientConfig>,
    signer: Signer,
}

fn lab() -> Lab {
    let m = regstorm::lab::generate(Alg::EdDSA).unwrap();
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let certs: Vec<CertificateDer<'static>> =
        CertificateDer::pem_slice_iter(m.server_pem.as_bytes())
            .collect::<Result<_, _>>()
            .unwrap();
    let key = PrivateKeyDer::from_pem_slice(m.server_key.as_bytes()).unwrap();
    let server = rustls::ServerConfig::builder_with_provider(provider.clone())
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_no_client_auth()
        .with_single_cert(certs, key)
        .unwrap();
    let client = regstorm::tls::client_config(m.ca_pem.as_bytes(), None).unwrap();
    let signer = Signer::from_pkcs8(m.signing_key.as_bytes(), "signing.key").unwrap();
    Lab {
        server: Arc::new(server),
        client: Arc::new(client),
        signer,
    }
}

fn limits() -> Limits {
    Limits {
        max_message_bytes: 65536,
        handshake_timeout_s: 10,
        idle_timeout_s: 360,
        max_connections: 100,
    }
}

fn registrar(l: &Lab) -> Registrar {
    let cfg = RegistrarSection {
        domain: Some("10.10.10.1".into()),
        cores: 1,
        ..RegistrarSection::default()
    };
    let keys = Arc::new(KeySet::new(vec![l.signer.public_key().clone()]));
    Registrar::new(cfg, Verifier::new(keys, Policy::default(), 1000))
}

fn facts(listener: ListenerKind) -> Facts {
    Facts {
        listener,
        conn: 1,
        source: None,
    }
}

/// A rustls client wired to a session; `chunk` limits how many bytes move per step.
struct Pair {
    client: rustls::ClientConnection,
    session: Session,
    registrar: Registrar,
    received: Vec<u8>,
}

impl Pair {
    fn new(l: &Lab) -> Self {
        let client = rustls::ClientConnection::new(
            l.client.clone(),
            ServerName::try_from("localhost").unwrap(),
        )
        .unwrap();
        let server = rustls::ServerConnection::new(l.server.clone()).unwrap();
        Pair {
            client,
            session: Session::tls(server, facts(ListenerKind::Oauth), limits(), NOW_MS),
            registrar: registrar(l),
            received: Vec::new(),
        }
    }

    /// Moves bytes both ways until nothing moves; client-to-server in pieces of `chunk`.
    fn pump(&mut self, chunk: usize) -> Result<(), CloseReason> {
        for _ in 0..10_000 {
            let mut to_server = Vec::new();
            while self.client.wants_write() {
                self.client.write_tls(&mut to_server).unwrap();
            }
            for piece in to_server.chunks(chunk) {
                self.session.receive(piece, NOW_MS, &mut self.registrar)?;
            }
            let mut to_client = Vec::new();
            self.session.transmit(&mut to_client);
            let mut rd = &to_client[..];
            while !rd.is_empty() {
                if self.client.read_tls(&mut rd).unwrap() == 0 {
                    break;
                }
                self.client.process_new_packets().unwrap();
                self.drain_client();
            }
            self.drain_client();
            if to_server.is_empty() && to_client.is_empty() {
                return Ok(());
            }
        }
        panic!("pump did not settle");
    }

    fn drain_client(&mut self) {
        let mut buf = [0u8; 8192];
        while let Ok(n) = self.client.reader().read(&mut buf) {
            if n == 0 {
                break;
            }
            self.received.extend_from_slice(&buf[..n]);
        }
    }

    fn send(&mut self, bytes: &[u8], chunk: usize) -> Result<(), CloseReason> {
        self.client.writer().write_all(bytes).unwrap();
        self.pump(chunk)
    }

    fn statuses(&self) -> Vec<u16> {
        let text = String::from_utf8_lossy(&self.received);
        text.split("SIP/2.0 ")
            .skip(1)
            .filter_map(|s| s.get(..3)?.parse().ok())
            .collect()
    }
}

fn jabber(token: Option<&str>, cseq: u32) -> Vec<u8> {
    let token: Option<&'static str> = token.map(|t| &*Box::leak(t.to_string().into_boxed_str()));
    let mut r = Register::seed("x");
    r.token = token;
    r.cseq = cseq;
    let mut out = Vec::new();
    r.write(&mut out, &cisco_body());
    out
}

fn token(l: &Lab) -> String {
    let now = NOW_MS / 1000;
    l.signer.mint(&TokenClaims {
        sub: "1010",
        exp: now + 3600,
        iat: now,
        dev: Some("CSFrado"),
        ..TokenClaims::default()
    })
}

#[test]
fn tls_jabber_flow_407_then_200() {
    let l = lab();
    let mut p = Pair::new(&l);
    p.pump(usize::MAX).unwrap();
    assert!(
        !p.client.is_handshaking(),
        "handshake completes through byte buffers"
    );
    p.send(&jabber(None, 2270), usize::MAX).unwrap();
    p.send(&jabber(Some(&token(&l)), 2271), usize::MAX).unwrap();
    assert_eq!(p.statuses(), [407, 200]);
    assert_eq!(p.registrar.bindings().len(), 1);
}

#[test]
fn pipelined_requests_are_answered_in_order() {
    let l = lab();
    let mut p = Pair::new(&l);
    let t = token(&l);
    let mut burst = jabber(None, 1);
    burst.extend_from_slice(&jabber(Some(&t), 2));
    burst.extend_from_slice(b"\r\n\r\n");
    burst.extend_from_slice(&jabber(Some(&t), 1));
    p.send(&burst, usize::MAX).unwrap();
    assert_eq!(
        p.statuses(),
        [407, 200, 500],
        "{}",
        String::from_utf8_lossy(&p.received)
    );
    assert!(
        String::from_utf8_lossy(&p.received).contains("\r\n\r\n\r\nSIP/2.0 500"),
        "the pong sits between the answers"
    );
}

#[test]
fn a_register_trickled_a_few_bytes_at_a_time() {
    let l = lab();
    let mut p = Pair::new(&l);
    p.pump(usize::MAX).unwrap();
    p.send(&jabber(Some(&token(&l)), 7), 3).unwrap();
    assert_eq!(p.statuses(), [200]);
}

#[test]
fn plaintext_session_answers_and_closes_on_framing_errors() {
    let l = lab();
    let mut r = registrar(&l);
    let mut s = Session::plain(facts(ListenerKind::Tcp), limits(), NOW_MS);
    let mut bad = b"REGISTER sip:10.10.10.1 SIP/2.0\r\nVia: SIP/2.0/TCP h;branch=z9hG4bK1\r\nnot a header\r\nCall-ID: c\r\nCSeq: 1 REGISTER\r\nFrom: <sip:1010@10.10.10.1>;tag=a\r\nTo: <sip:1010@10.10.10.1>\r\nContent-Length: 0\r\n\r\n".to_vec();
    s.receive(&bad, NOW_MS, &mut r).unwrap();
    let mut out = Vec::new();
    s.transmit(&mut out);
    let text = String::from_utf8(out).unwrap();
    assert!(
        text.starts_with("SIP/2.0 400 Header Line Without Colon\r\n"),
        "{text}"
    );
    assert!(s.closed().is_none(), "a message error keeps the connection");
    assert!(
        s.wants_read(0) && !s.wants_read(regstorm::session::MAX_PENDING_OUTPUT),
        "backpressure"
    );
    bad = b"REGISTER sip:10.10.10.1 SIP/7.0\r\nVia: SIP/2.0/TCP h;branch=z9hG4bK2\r\nCall-ID: c\r\nCSeq: 2 REGISTER\r\nl: 0\r\n\r\n".to_vec();
    s.receive(&bad, NOW_MS, &mut r).unwrap();
    let mut out = Vec::new();
    s.transmit(&mut out);
    assert!(String::from_utf8(out)
        .unwrap()
        .starts_with("SIP/2.0 505 Version Not Supported\r\n"));
    let neg = b"REGISTER sip:10.10.10.1 SIP/2.0\r\nVia: SIP/2.0/TCP h;branch=z9hG4bK3\r\nCall-ID: c\r\nCSeq: 3 REGISTER\r\nContent-Length: -5\r\n\r\n";
    assert_eq!(
        s.receive(neg, NOW_MS, &mut r),
        Err(CloseReason::Framing(regstorm::sip::Error::BadContentLength))
    );
    let mut out = Vec::new();
    s.transmit(&mut out);
    assert!(
        String::from_utf8(out)
            .unwrap()
            .starts_with("SIP/2.0 400 Bad Content-Length\r\n"),
        "answered, then closed"
    );
    assert!(s.closed().is_some());
}

#[test]
fn handshake_and_idle_timeouts() {
    let l = lab();
    let server = rustls::ServerConnection::new(l.server.clone()).unwrap();
    let mut s = Session::tls(server, facts(ListenerKind::Oauth), limits(), NOW_MS);
    assert_eq!(s.deadline(), NOW_MS + 10_000);
    assert_eq!(s.on_timer(NOW_MS + 9_999), None);
    assert_eq!(
        s.on_timer(NOW_MS + 10_000),
        Some(CloseReason::HandshakeTimeout)
    );
    let mut p = Pair::new(&l);
    p.pump(usize::MAX).unwrap();
    assert_eq!(p.session.deadline(), NOW_MS + 360_000);
    assert_eq!(
        p.session.on_timer(NOW_MS + 360_000),
        Some(CloseReason::Idle)
    );
}

#[test]
fn peer_close_and_binding_cleanup_are_the_runtimes_cue() {
    let l = lab();
    let mut p = Pair::new(&l);
    p.send(&jabber(Some(&token(&l)), 1), usize::MAX).unwrap();
    assert_eq!(p.registrar.bindings().len(), 1);
    assert_eq!(
        p.session.receive(&[], NOW_MS, &mut p.registrar),
        Err(CloseReason::PeerClosed)
    );
    assert_eq!(p.registrar.connection_closed(p.session.facts().conn), 1);
}

/// Expressway-C style: hundreds of REGISTERs, one TLS record each, arriving in 16 KiB reads
/// (many records per read) and all at once (answers far beyond rustls's 64 KiB send limit).
/// Regression: rustls's 16 KiB plaintext limit closed the connection, and answers were cut.
#[test]
fn many_records_per_read_and_large_output_are_handled_whole() {
    let l = lab();
    let t = token(&l);
    for chunk in [16 * 1024, usize::MAX] {
        let mut p = Pair::new(&l);
        p.client.set_buffer_limit(None);
        p.pump(usize::MAX).unwrap();
        for cseq in 1..=300 {
            p.client
                .writer()
                .write_all(&jabber(Some(&t), cseq))
                .unwrap();
        }
        p.pump(chunk).unwrap();
        let statuses = p.statuses();
        assert_eq!(statuses.len(), 300, "chunk {chunk}");
        assert!(statuses.iter().all(|&s| s == 200), "chunk {chunk}");
    }
}

/// Regression: bytes after the peer's close_notify made the session loop forever.
#[test]
fn records_after_close_notify_end_the_session() {
    let l = lab();
    let mut p = Pair::new(&l);
    p.pump(usize::MAX).unwrap();
    let t = token(&l);
    p.client.writer().write_all(&jabber(Some(&t), 1)).unwrap();
    p.client.send_close_notify();
    let mut to_server = Vec::new();
    while p.client.wants_write() {
        p.client.write_tls(&mut to_server).unwrap();
    }
    // A record after the close_notify (as a hostile peer would send).
    to_server.extend_from_slice(&[23, 3, 3, 0, 5, 1, 2, 3, 4, 5]);
    let r = p.session.receive(&to_server, NOW_MS, &mut p.registrar);
    assert_eq!(r, Err(CloseReason::PeerClosed));
    // What came before the close_notify was answered.
    let mut out = Vec::new();
    p.session.transmit(&mut out);
    assert!(!out.is_empty());
    assert_eq!(p.registrar.bindings().len(), 1);
    // And the session stays closed.
    let again = p
        .session
        .receive(&[23, 3, 3, 0, 1, 0], NOW_MS, &mut p.registrar);
    assert_eq!(again, Err(CloseReason::PeerClosed));
}

/// Slowloris: bytes that complete no message are not activity. Regression: each byte reset
/// the idle deadline, so a peer trickling a message one byte a second held its connection for
/// ever.
#[test]
fn a_message_trickled_a_byte_a_second_is_closed_at_the_message_deadline() {
    let l = lab();
    let mut reg = registrar(&l);
    let mut s = Session::plain(facts(ListenerKind::Tcp), limits(), NOW_MS);
    let msg = jabber(Some(&token(&l)), 1);
    for i in 0..10u64 {
        let b = i as usize;
        s.receive(&msg[b..b + 1], NOW_MS + i * 1000, &mut reg)
            .unwrap();
        // The deadline is the first byte's time plus handshake_timeout_s, however many follow.
        assert_eq!(s.deadline(), NOW_MS + 10_000);
    }
    assert_eq!(s.on_timer(NOW_MS + 9_999), None);
    assert_eq!(
        s.on_timer(NOW_MS + 10_000),
        Some(CloseReason::MessageTimeout)
    );
}

/// The same over TLS, where the trickled bytes are pieces of a record (nothing reaches the
/// framer until the record is whole).
#[test]
fn a_tls_record_trickled_a_byte_a_second_is_closed_at_the_message_deadline() {
    let l = lab();
    let mut p = Pair::new(&l);
    p.pump(usize::MAX).unwrap();
    p.client
        .writer()
        .write_all(&jabber(Some(&token(&l)), 1))
        .unwrap();
    let mut wire = Vec::new();
    while p.client.wants_write() {
        p.client.write_tls(&mut wire).unwrap();
    }
    let t0 = NOW_MS + 60_000;
    for i in 0..12u64 {
        let b = i as usize;
        let _ = p
            .session
            .receive(&wire[b..b + 1], t0 + i * 1000, &mut p.registrar);
    }
    assert_eq!(p.session.deadline(), t0 + 10_000);
    assert_eq!(
        p.session.on_timer(t0 + 12_000),
        Some(CloseReason::MessageTimeout)
    );
}

/// A message that arrives in pieces but completes in time is activity: both deadlines move
/// to its completion.
#[test]
fn a_message_completed_in_pieces_resets_the_idle_deadline() {
    let l = lab();
    let mut reg = registrar(&l);
    let mut s = Session::plain(facts(ListenerKind::Tcp), limits(), NOW_MS);
    let msg = jabber(Some(&token(&l)), 1);
    let half = msg.len() / 2;
    s.receive(&msg[..half], NOW_MS + 1_000, &mut reg).unwrap();
    assert_eq!(s.deadline(), NOW_MS + 11_000);
    s.receive(&msg[half..], NOW_MS + 5_000, &mut reg).unwrap();
    let mut out = Vec::new();
    s.transmit(&mut out);
    assert!(out.starts_with(b"SIP/2.0 200 OK\r\n"), "{out:?}");
    assert_eq!(s.deadline(), NOW_MS + 5_000 + 360_000);
    // A keep-alive ping is a complete frame too.
    s.receive(b"\r\n\r\n", NOW_MS + 100_000, &mut reg).unwrap();
    assert_eq!(s.deadline(), NOW_MS + 100_000 + 360_000);
}

/// A REGISTER carrying `line` as an extra header line right after its request line (before
/// Via, so an answer needs more than the first few lines of the head).
fn with_header_line(line: &str, cseq: u32) -> Vec<u8> {
    let wire = jabber(None, cseq);
    let eol = wire.windows(2).position(|w| w == b"\r\n").unwrap() + 2;
    let mut out = wire[..eol].to_vec();
    out.extend_from_slice(line.as_bytes());
    out.extend_from_slice(b"\r\n");
    out.extend_from_slice(&wire[eol..]);
    out
}

/// Credentials of `len` base64url octets: longer than any token regstorm issues
/// (`auth::MAX_TOKEN`), well within `max_message_bytes`.
fn oversized_credentials(len: usize) -> [String; 2] {
    let t = "a".repeat(len);
    [
        format!("Authorization: Bearer {t}"),
        format!("Proxy-Authorization: Bearer token=\"{t}\""),
    ]
}

const INVALID_TOKEN: &str =
    "\r\nProxy-Authenticate: Bearer realm=\"ccmsipline\", error=\"invalid_token\"\r\n";

/// Regression: a 16 KiB Authorization header made the head larger than the framer's fixed
/// 16 KiB limit, and the connection closed without an answer although the message was far
/// below `max_message_bytes` (64 KiB). The head limit now follows `max_message_bytes`; a
/// bearer token longer than `auth::MAX_TOKEN` cannot be one we issue: 407 invalid_token.
#[test]
fn any_message_within_max_message_bytes_gets_an_answer() {
    let l = lab();
    for len in [16 * 1024, 40 * 1024] {
        for (i, line) in oversized_credentials(len).iter().enumerate() {
            let wire = with_header_line(line, 1 + i as u32);
            assert!(wire.len() < limits().max_message_bytes);
            // Plaintext (TCP listener), in one piece and trickled in 1 KiB reads.
            for chunk in [usize::MAX, 1024] {
                let mut r = registrar(&l);
                let mut s = Session::plain(facts(ListenerKind::Tcp), limits(), NOW_MS);
                for piece in wire.chunks(chunk.min(wire.len())) {
                    s.receive(piece, NOW_MS, &mut r).unwrap();
                }
                let mut out = Vec::new();
                s.transmit(&mut out);
                let text = String::from_utf8(out).unwrap();
                assert!(
                    text.starts_with("SIP/2.0 407 ") && text.contains(INVALID_TOKEN),
                    "{len} {line:.30} chunk {chunk}: {text}"
                );
                assert!(s.closed().is_none(), "the connection stays up");
            }
            // TLS.
            let mut p = Pair::new(&l);
            p.send(&wire, usize::MAX).unwrap();
            assert_eq!(p.statuses(), [407], "TLS, {len} {line:.30}");
            let text = String::from_utf8_lossy(&p.received);
            assert!(text.contains(INVALID_TOKEN), "{text}");
            // UDP.
            let mut r = registrar(&l);
            let mut out = Vec::new();
            let answered = regstorm::session::answer_datagram(
                &wire,
                limits().max_message_bytes,
                &mut r,
                &facts(ListenerKind::Udp),
                NOW_MS / 1000,
                &mut out,
            );
            assert_eq!(answered, Some((true, 407)), "UDP, {len} {line:.30}");
            assert!(String::from_utf8(out).unwrap().contains(INVALID_TOKEN));
        }
    }
}

/// Beyond `max_message_bytes` the head cannot be trusted: 400 when it can be read, then close.
#[test]
fn a_head_beyond_max_message_bytes_gets_400_and_a_close() {
    let l = lab();
    let mut wire = jabber(None, 1);
    let at = wire.windows(4).position(|w| w == b"\r\n\r\n").unwrap() + 2;
    let big = format!("X-Padding: {}\r\n", "p".repeat(70 * 1024));
    wire.splice(at..at, big.bytes());
    let mut r = registrar(&l);
    let mut s = Session::plain(facts(ListenerKind::Tcp), limits(), NOW_MS);
    assert_eq!(
        s.receive(&wire, NOW_MS, &mut r),
        Err(CloseReason::Framing(regstorm::sip::Error::HeadTooLarge))
    );
    let mut out = Vec::new();
    s.transmit(&mut out);
    let text = String::from_utf8(out).unwrap();
    assert!(
        text.starts_with("SIP/2.0 400 Header Section Too Large\r\n"),
        "{text}"
    );
}

/// Issue 11's rule (a), small and deterministic: a core whose verification budget is spent
/// (a storm) still completes a new connection's TLS handshake and answers a cached token from
/// the cache; only the fresh token waits, with a 503 and Retry-After, never a 407; the
/// connection stays open throughout.
#[test]
fn a_busy_core_still_finishes_a_handshake_and_answers_cached_tokens() {
    use regstorm::registrar::{Admission, AdmissionConfig};
    let l = lab();
    // The device's token verified once, while the core had budget (another connection).
    let cached = token(&l);
    let mut first = Pair::new(&l);
    first.pump(usize::MAX).unwrap();
    first.send(&jabber(Some(&cached), 1), usize::MAX).unwrap();
    assert_eq!(first.statuses(), [200]);
    // The storm: the same registrar core, no verification budget left.
    let mut p = Pair::new(&l);
    p.registrar = first.registrar;
    let spent = AdmissionConfig {
        share_start: 0.0,
        ..AdmissionConfig::default()
    };
    p.registrar.set_admission(Admission::new(spent, 3));
    p.pump(usize::MAX).unwrap();
    assert!(!p.client.is_handshaking(), "the handshake completes");
    let fresh = l.signer.mint(&TokenClaims {
        sub: "1010",
        exp: NOW_MS / 1000 + 3600,
        iat: NOW_MS / 1000 + 1,
        dev: Some("CSFrado"),
        ..TokenClaims::default()
    });
    p.send(&jabber(Some(&cached), 2), usize::MAX).unwrap();
    p.send(&jabber(Some(&fresh), 3), usize::MAX).unwrap();
    assert_eq!(p.statuses(), [200, 503]);
    let text = String::from_utf8_lossy(&p.received);
    assert!(text.contains("\r\nRetry-After: "), "{text}");
    assert_eq!(p.registrar.admission().stats().verify_shed, 1);
    assert_eq!(p.registrar.verifier().stats().verifications, 1);
}
