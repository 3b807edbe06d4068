//! The load engine against the registrar, both sans-IO, through byte buffers with a fake
//! clock: the Jabber flow end to end, re-registration, token churn, TLS, connection loss.

use regstorm::auth::{Alg, KeySet, Policy, Signer, Verifier};
use regstorm::config::{Limits, ListenerKind, RegistrarSection};
use regstorm::load::engine::{Engine, Transport};
use regstorm::load::profile::{Overrides, Profile};
use regstorm::registrar::{Facts, Registrar};
use regstorm::session::Session;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName};
use std::sync::Arc;

const T0: u64 = 1_800_000_000_000;

struct Rig {
    engine: Engine,
    registrar: Registrar,
    sessions: Vec<Option<Session>>,
    server_tls: Option<Arc<rustls::ServerConfig>>,
    now: u64,
}

fn profile(over: Overrides) -> Profile {
    let mut p = Profile::find("ci").unwrap();
    p.apply(&over, "profiles/ci.toml").unwrap();
    p
}

impl Rig {
    fn new(p: &Profile, tls: bool) -> Rig {
        let lab = regstorm::lab::generate(Alg::EdDSA).unwrap();
        let signer = Signer::from_pkcs8(lab.signing_key.as_bytes(), "signing.key").unwrap();
        let keys = Arc::new(KeySet::new(vec![signer.public_key().clone()]));
        let registrar = Registrar::new(
            RegistrarSection::default(),
            Verifier::new(keys, Policy::default(), 100_000),
        );
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let (transport, server_tls) = if tls {
            let certs: Vec<CertificateDer<'static>> =
                CertificateDer::pem_slice_iter(lab.server_pem.as_bytes())
                    .collect::<Result<_, _>>()
                    .unwrap();
            let key = PrivateKeyDer::from_pem_slice(lab.server_key.as_bytes()).unwrap();
            let server = rustls::ServerConfig::builder_with_provider(provider.clone())
                .with_safe_default_protocol_versions()
                .unwrap()
                .with_no_client_auth()
                .with_single_cert(certs, key)
                .unwrap();
            let client = regstorm::tls::client_config(lab.ca_pem.as_bytes(), None).unwrap();
            (
                Transport::Tls {
                    config: Arc::new(client),
                    server_name: ServerName::try_from("localhost").unwrap(),
                },
                Some(Arc::new(server)),
            )
        } else {
            (Transport::Tcp, None)
        };
        let engine = Engine::new(p, transport, signer, 0, p.devices, p.connections, T0 * 1000);
        let links = engine.links();
        Rig {
            engine,
            registrar,
            sessions: (0..links).map(|_| None).collect(),
            server_tls,
            now: T0,
        }
    }

    /// Runs the clock to `until`, a millisecond at a time, moving every byte.
    fn run(&mut self, until: u64) {
        while self.now < until {
            let us = self.now * 1000;
            self.engine.run_due(us);
            for l in self.engine.take_connects() {
                self.engine.connecting(l);
                let facts = Facts {
                    listener: ListenerKind::Oauth,
                    conn: l as u64 + 1,
                    source: None,
                };
                self.sessions[l] = Some(match &self.server_tls {
                    Some(cfg) => Session::tls(
                        rustls::ServerConnection::new(cfg.clone()).unwrap(),
                        facts,
                        Limits::default(),
                        self.now,
                    ),
                    None => Session::plain(facts, Limits::default(), self.now),
                });
                self.engine
                    .link_up(l, &format!("127.0.0.1:{}", 40000 + l), us)
                    .unwrap();
            }
            // Move bytes until quiet.
            for _ in 0..8 {
                let mut moved = false;
                for l in self.engine.take_ready() {
                    let mut out = Vec::new();
                    self.engine.transmit(l, &mut out);
                    if out.is_empty() {
                        continue;
                    }
                    moved = true;
                    let s = self.sessions[l].as_mut().unwrap();
                    s.receive(&out, self.now, &mut self.registrar).unwrap();
                    let mut back = Vec::new();
                    s.transmit(&mut back);
                    if !back.is_empty() {
                        self.engine.receive(l, &back, us).unwrap();
                    }
                }
                if !moved {
                    break;
                }
            }
            self.now += 1;
        }
    }
}

#[test]
fn closed_loop_jabber_flow_over_tcp() {
    let p = profile(Overrides {
        devices: Some(40),
        connections: Some(4),
        ..Overrides::default()
    });
    let mut rig = Rig::new(&p, false);
    rig.run(T0 + 6_000);
    let s = rig.engine.stats();
    // Every device: one 407, then a 200 every second after its start (ramp 1 s).
    assert_eq!(s.responses.get(&407), Some(&40), "{:?}", s.responses);
    let ok = *s.responses.get(&200).unwrap();
    assert!((40 * 5..=40 * 7).contains(&ok), "{ok} 200s");
    assert_eq!(s.errors + s.timeouts, 0);
    assert_eq!(rig.registrar.bindings().len(), 40);
    // 4 s tokens renewed at 3 s: each device minted its first and one more.
    assert_eq!(s.tokens_minted, 80);
    let verifications = rig.registrar.verifier().stats().verifications;
    assert_eq!(
        verifications, 80,
        "each new token is a cache miss at the registrar"
    );
    // Latency: every transaction is answered in the same millisecond here.
    assert!(s.latency.max() < 2_000, "{}", s.latency.max());
    assert_eq!(s.latency.len(), s.responses.values().sum::<u64>());
}

#[test]
fn closed_loop_over_tls_counts_handshakes() {
    let p = profile(Overrides {
        devices: Some(10),
        connections: Some(2),
        duration_s: Some(3),
        ..Overrides::default()
    });
    let mut rig = Rig::new(&p, true);
    rig.run(T0 + 3_000);
    let s = rig.engine.stats();
    assert_eq!(s.tls_handshakes, 2);
    assert_eq!(s.responses.get(&407), Some(&10));
    assert!(s.responses.get(&200).copied().unwrap_or(0) >= 20);
    assert_eq!(rig.registrar.bindings().len(), 10);
}

#[test]
fn open_loop_offers_the_rate() {
    let p = profile(Overrides {
        devices: Some(50),
        connections: Some(5),
        rate: Some(200.0),
        duration_s: Some(4),
        ..Overrides::default()
    });
    let mut rig = Rig::new(&p, false);
    rig.engine.set_rate(200.0);
    rig.run(T0 + 4_000);
    let s = rig.engine.stats();
    // 200/s for 4 s: 800 turns; all but the very first (before any connection is up) sent,
    // since devices are answered at once and one is always idle.
    assert!(s.missed_turns <= 1, "{}", s.missed_turns);
    let offered: u64 = s.timeline.iter().map(|t| t.offered).sum();
    assert!((790..=801).contains(&offered), "{offered}");
    assert_eq!(s.sent + s.missed_turns, offered);
    // The turns are the only sends: 407s and 200s together match them.
    assert_eq!(s.responses.values().sum::<u64>(), s.sent);
}

#[test]
fn a_lost_connection_reconnects_and_registers_again() {
    let p = profile(Overrides {
        devices: Some(10),
        connections: Some(1),
        duration_s: Some(8),
        ..Overrides::default()
    });
    let mut rig = Rig::new(&p, false);
    rig.run(T0 + 2_000);
    let before = *rig.engine.stats().responses.get(&200).unwrap();
    // The registrar side goes away: the link drops; the registrar forgets its bindings.
    rig.engine.link_down(0, rig.now * 1000);
    rig.registrar.connection_closed(1);
    rig.sessions[0] = None;
    assert_eq!(rig.registrar.bindings().len(), 0);
    rig.run(T0 + 8_000);
    let s = rig.engine.stats();
    assert!(*s.responses.get(&200).unwrap() > before + 10);
    assert_eq!(
        rig.registrar.bindings().len(),
        10,
        "registered again after the backoff"
    );
}

/// UDP: one datagram per REGISTER; a lost datagram is sent again on timer E (500 ms, then
/// doubling), and the answer to the retransmission completes the transaction.
#[test]
fn udp_datagrams_and_timer_e_retransmissions() {
    let p = profile(Overrides {
        devices: Some(4),
        connections: Some(1),
        duration_s: Some(4),
        ..Overrides::default()
    });
    let lab = regstorm::lab::generate(Alg::EdDSA).unwrap();
    let signer = Signer::from_pkcs8(lab.signing_key.as_bytes(), "signing.key").unwrap();
    let keys = Arc::new(KeySet::new(vec![signer.public_key().clone()]));
    let mut registrar = Registrar::new(
        RegistrarSection::default(),
        Verifier::new(keys, Policy::default(), 1000),
    );
    let mut engine = Engine::new(&p, Transport::Udp, signer, 0, 4, 1, T0 * 1000);
    let facts = Facts {
        listener: ListenerKind::Udp,
        conn: 0,
        source: None,
    };
    let mut dropped = 0;
    let mut delivered = 0;
    for ms in T0..T0 + 4_000 {
        let us = ms * 1000;
        engine.run_due(us);
        for l in engine.take_connects() {
            engine.connecting(l);
            engine.link_up(l, "127.0.0.1:45000", us).unwrap();
        }
        for l in engine.take_ready() {
            while let Some(d) = engine.next_datagram(l) {
                assert!(String::from_utf8_lossy(&d).contains("SIP/2.0/UDP"));
                // The network loses the first three datagrams.
                if dropped < 3 {
                    dropped += 1;
                    continue;
                }
                delivered += 1;
                let mut out = Vec::new();
                regstorm::session::answer_datagram(
                    &d,
                    65536,
                    &mut registrar,
                    &facts,
                    ms / 1000,
                    &mut out,
                );
                engine.receive_datagram(l, &out, us);
            }
        }
    }
    let s = engine.stats();
    assert_eq!(s.retransmissions, 3, "each lost datagram sent again once");
    assert_eq!(s.responses.get(&407), Some(&4));
    assert!(s.responses.get(&200).copied().unwrap_or(0) >= 4 * 3);
    assert_eq!(s.timeouts + s.errors, 0);
    // The retransmitted transactions took at least timer E's 500 ms.
    assert!(s.latency.max() >= 500_000, "{}", s.latency.max());
    assert_eq!(registrar.bindings().len(), 4);
    assert!(delivered > 12);
}

impl Rig {
    /// Moves bytes without advancing the clock or running devices.
    fn settle(&mut self) {
        let us = self.now * 1000;
        for _ in 0..8 {
            for l in self.engine.take_ready() {
                let mut out = Vec::new();
                self.engine.transmit(l, &mut out);
                if out.is_empty() {
                    continue;
                }
                let s = self.sessions[l].as_mut().unwrap();
                s.receive(&out, self.now, &mut self.registrar).unwrap();
                let mut back = Vec::new();
                s.transmit(&mut back);
                if !back.is_empty() {
                    self.engine.receive(l, &back, us).unwrap();
                }
            }
        }
    }
}

#[test]
fn tokens_minted_ahead_are_the_ones_used_and_unregister_at_end_empties_the_table() {
    let p = profile(Overrides {
        devices: Some(20),
        connections: Some(2),
        ..Overrides::default()
    });
    let mut rig = Rig::new(&p, false);
    while rig.now < T0 + 6_000 {
        rig.engine.mint_ahead(rig.now * 1000, 100_000);
        let next = rig.now + 1;
        rig.run(next);
    }
    let minted = rig.engine.stats().tokens_minted;
    // Each device used its first token and one renewal (4 s tokens renewed at 3 s); renewals
    // were signed ahead, and at most one more per device is waiting, unused.
    assert_eq!(rig.registrar.verifier().stats().verifications, 40);
    assert!((40..=60).contains(&minted), "{minted}");
    assert_eq!(rig.registrar.bindings().len(), 20);
    // The end: Expires 0 from every idle device, answered 200, and nothing new starts.
    let sent_before = rig.engine.stats().sent;
    let unregistering = rig.engine.unregister_all(rig.now * 1000);
    assert_eq!(unregistering, 20);
    rig.settle();
    assert_eq!(rig.engine.in_flight(), 0);
    assert_eq!(rig.engine.stats().sent, sent_before + 20);
    assert_eq!(
        rig.registrar.bindings().len(),
        0,
        "every binding removed: {:?}",
        rig.engine.stats().responses
    );
}

#[test]
fn answers_read_a_tick_late_keep_their_arrival_time() {
    // The runtime reads answers up to a tick after the kernel received them. The latency
    // ends at the arrival, and what an answer triggers (the retry after the 407, the
    // re-REGISTER with reregister_s = 0) is timed when it really goes out: the read delay is
    // in neither.
    let p = profile(Overrides {
        devices: Some(1),
        connections: Some(1),
        reregister_s: Some(0),
        ramp_s: Some(0),
        ..Overrides::default()
    });
    let Rig {
        mut engine,
        mut registrar,
        ..
    } = Rig::new(&p, false);
    engine.set_send_slack(4_000);
    let mut clock = T0 * 1000;
    engine.run_due(clock);
    let l = engine.take_connects()[0];
    engine.connecting(l);
    let facts = Facts {
        listener: ListenerKind::Oauth,
        conn: 1,
        source: None,
    };
    let mut session = Session::plain(facts, Limits::default(), T0);
    engine.link_up(l, "127.0.0.1:40000", clock).unwrap();
    for round in 0..5 {
        engine.run_due(clock);
        let mut out = Vec::new();
        engine.transmit(l, &mut out);
        assert!(!out.is_empty(), "round {round}: a REGISTER went out");
        session.receive(&out, clock / 1000, &mut registrar).unwrap();
        let mut back = Vec::new();
        session.transmit(&mut back);
        // Answered 150 µs after the send, read 3 ms after the send.
        let (arrived, read) = (clock + 150, clock + 3_000);
        engine.receive_at(l, &back, arrived, read).unwrap();
        clock = read;
    }
    let s = engine.stats();
    assert_eq!(s.responses.get(&407), Some(&1), "{:?}", s.responses);
    assert_eq!(s.responses.get(&200), Some(&4), "{:?}", s.responses);
    assert!(
        (140..=160).contains(&s.latency.min()) && (140..=160).contains(&s.latency.max()),
        "every transaction took 150 µs: {}..{}",
        s.latency.min(),
        s.latency.max()
    );
}
