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
    /// The registrar is frozen (as under SIGSTOP) for these milliseconds: what the engine
    /// sends meanwhile waits in the socket, and is read when it thaws.
    stall: std::ops::Range<u64>,
    held: Vec<Vec<u8>>,
    /// The signer's key, for a token bank.
    signing_key: String,
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
            stall: 0..0,
            held: vec![Vec::new(); links],
            signing_key: lab.signing_key.clone(),
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
                let mut ready = self.engine.take_ready();
                if !self.stall.contains(&self.now) {
                    // Thawed: what waited in the sockets is read now.
                    ready.extend((0..self.held.len()).filter(|&l| !self.held[l].is_empty()));
                }
                for l in ready {
                    let mut out = std::mem::take(&mut self.held[l]);
                    self.engine.transmit(l, &mut out);
                    if out.is_empty() {
                        continue;
                    }
                    if self.stall.contains(&self.now) {
                        self.held[l] = out;
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

/// An open-loop run whose registrar freezes for `stall_ms` from 2 s in: (stats, p95 µs).
fn open_loop_with_a_stall(stall_ms: u64, duration_s: u64) -> (regstorm::load::engine::Stats, u64) {
    let p = profile(Overrides {
        devices: Some(20),
        connections: Some(2),
        rate: Some(400.0),
        duration_s: Some(duration_s),
        token_ttl_s: Some(3600),
        ..Overrides::default()
    });
    let mut rig = Rig::new(&p, false);
    rig.engine.set_rate(400.0);
    rig.stall = T0 + 2_000..T0 + 2_000 + stall_ms;
    rig.run(T0 + duration_s * 1000);
    rig.engine.finish();
    let s = rig.engine.stats().clone();
    let p95 = s.latency.value_at_quantile(0.95);
    (s, p95)
}

#[test]
fn open_loop_turns_wait_for_a_free_device_through_a_registrar_stall() {
    // 400/s over 20 devices, the registrar frozen for 0.5 s, then for 1.5 s: every device has
    // a REGISTER in flight within 50 ms, and the turns that fall due after that are neither
    // dropped nor sent on time: they wait for the first device to free and go when the
    // registrar thaws, their latency counted from their intended time. The tail grows with
    // the stall.
    let (short, short_p95) = open_loop_with_a_stall(500, 6);
    let (long, long_p95) = open_loop_with_a_stall(1_500, 6);
    for (s, stall_us) in [(&short, 500_000u64), (&long, 1_500_000)] {
        // Nothing lost: every turn of the 6 s went out (the first ones wait for the
        // connections), late or not, and was answered.
        assert_eq!(s.missed_turns, 0);
        let offered: u64 = s.timeline.iter().map(|t| t.offered).sum();
        assert!((2_390..=2_401).contains(&offered), "{offered} offered");
        assert_eq!(s.sent, offered);
        assert_eq!(s.responses.values().sum::<u64>(), s.sent);
        // Turns intended during the stall, less the 20 that found a free device, went late.
        let during = stall_us * 400 / 1_000_000;
        assert!(
            s.late_sends + 20 >= during && s.late_sends <= during + 20,
            "{} late sends for a stall of {stall_us} µs",
            s.late_sends
        );
        // The REGISTERs sent as it froze waited the whole stall.
        assert!(s.latency.max() >= stall_us, "{} µs", s.latency.max());
        assert!(
            s.latency.max() < stall_us + 50_000,
            "{} µs",
            s.latency.max()
        );
        // Before the stall every answer came within a millisecond.
        assert!(s.timeline[1].latency.max() < 2_000);
        // The engine kept its schedule: the lag is the registrar's, not the engine's.
        assert!(s.lag_ms_max < 5, "{} ms", s.lag_ms_max);
    }
    // The waits are in the percentiles, and grow with the stall: a 0.5 s stall makes 8 % of
    // the REGISTERs late by 0 to 0.5 s (p95 about 0.19 s), a 1.5 s one 25 % by 0 to 1.5 s
    // (p95 about 1.2 s). Had the waiting turns been dropped, only the 20 REGISTERs in flight
    // as it froze would be late, and p95 would be under a millisecond.
    assert!(short_p95 >= 100_000, "p95 {short_p95} µs");
    assert!(long_p95 >= 800_000, "p95 {long_p95} µs");
    assert!(long_p95 > 3 * short_p95, "{long_p95} vs {short_p95}");
    assert!(long.late_sends > 2 * short.late_sends);
}

#[test]
fn open_loop_turns_still_waiting_at_the_end_are_missed_sends() {
    // The registrar freezes 2 s into a 4 s run and never thaws before the end: the turns of
    // the last 2 s (less the 20 sent as it froze) are counted as missed, and offered.
    let (s, _) = open_loop_with_a_stall(10_000, 4);
    assert!(
        (780..=800).contains(&s.missed_turns),
        "{} missed",
        s.missed_turns
    );
    let offered: u64 = s.timeline.iter().map(|t| t.offered).sum();
    assert_eq!(offered, s.sent + s.missed_turns);
    assert!((1_590..=1_601).contains(&offered), "{offered}");
}

#[test]
fn first_tokens_come_from_the_bank_and_none_is_signed_in_the_send_path() {
    use regstorm::load::tokens::TokenBank;
    // Fresh tokens in the first REGISTER (as through Expressway after a restart): each device
    // takes the token signed for it before the run; the engine signs none while it runs.
    let mut p = profile(Overrides {
        devices: Some(30),
        connections: Some(3),
        token_ttl_s: Some(3600),
        ..Overrides::default()
    });
    p.challenge_first = false;
    let mut rig = Rig::new(&p, false);
    let signer = Signer::from_pkcs8(rig.signing_key.as_bytes(), "signing.key").unwrap();
    let bank = TokenBank::signed(
        &signer,
        p.devices,
        p.user_start,
        3600,
        T0 * 1000 - 5_000_000,
    );
    assert_eq!(bank.len(), 30);
    assert_eq!(
        bank.bytes(),
        30 * 64,
        "64 octets of Ed25519 signature per device"
    );
    rig.engine.set_bank(Arc::new(bank));
    rig.run(T0 + 3_000);
    let s = rig.engine.stats();
    assert_eq!(s.inline_mints, 0);
    assert_eq!(s.tokens_minted, 0);
    assert_eq!(s.responses.get(&407), None, "{:?}", s.responses);
    assert!(s.responses.get(&200).copied().unwrap_or(0) >= 30 * 2);
    assert_eq!(rig.registrar.bindings().len(), 30);
    // One verification per device: the bank's tokens are good and each is used throughout.
    assert_eq!(rig.registrar.verifier().stats().verifications, 30);
}

#[test]
fn without_a_bank_the_first_tokens_are_signed_in_the_send_path_and_counted() {
    let p = profile(Overrides {
        devices: Some(10),
        connections: Some(1),
        token_ttl_s: Some(3600),
        ..Overrides::default()
    });
    let mut rig = Rig::new(&p, false);
    rig.run(T0 + 2_000);
    let s = rig.engine.stats();
    assert_eq!(s.inline_mints, 10);
    assert_eq!(s.tokens_minted, 10);
}

#[test]
fn a_lost_connection_takes_its_devices_bindings_and_they_come_back_with_it() {
    use regstorm::load::engine::LinkLoss;
    // MRA-like: 12 devices on 1 connection. The registered count follows the bindings: all 12
    // by the ramp's end, none once the connection is reset, all again after the backoff.
    let p = profile(Overrides {
        devices: Some(12),
        connections: Some(1),
        duration_s: Some(8),
        ..Overrides::default()
    });
    let mut rig = Rig::new(&p, false);
    rig.run(T0 + 2_000);
    let s = rig.engine.stats();
    assert_eq!(s.registered, 12);
    let first_all = s.all_registered_at_us().expect("all registered");
    assert!(first_all < 1_100_000, "{first_all} µs (1 s ramp)");
    rig.engine.link_lost(0, LinkLoss::Reset, rig.now * 1000);
    rig.registrar.connection_closed(1);
    rig.sessions[0] = None;
    assert_eq!(rig.engine.stats().registered, 0);
    rig.run(T0 + 8_000);
    let s = rig.engine.stats();
    assert_eq!(s.registered, 12);
    assert_eq!(rig.registrar.bindings().len(), 12);
    let lost = s.connections_lost;
    assert_eq!(lost[LinkLoss::Reset as usize], 1, "{lost:?}");
    assert_eq!(lost.iter().sum::<u64>(), 1, "{lost:?}");
    // The first instant stays the first; the loss and the return are in the spans.
    assert_eq!(s.all_registered_at_us(), Some(first_all));
    assert_eq!(s.all_registered.len(), 2, "{:?}", s.all_registered);
    assert_eq!(s.all_registered[0].1, 2_000_000);
    // Back after the jittered backoff (at least half a second).
    assert!(s.all_registered[1].0 >= 2_500_000, "{:?}", s.all_registered);
    let by_second = s.registered_by_second();
    assert_eq!(by_second[1], 12);
    assert_eq!(*by_second.last().unwrap(), 12);
}

#[test]
fn rejections_and_failures_are_counted_per_second_apart() {
    use regstorm::load::engine::LinkLoss;
    // A connection lost with REGISTERs in flight: failures in that second, not 503s.
    let p = profile(Overrides {
        devices: Some(10),
        connections: Some(1),
        reregister_s: Some(0),
        duration_s: Some(4),
        ..Overrides::default()
    });
    let mut rig = Rig::new(&p, false);
    rig.stall = T0 + 1_500..T0 + 10_000;
    rig.run(T0 + 1_600);
    rig.engine
        .link_lost(0, LinkLoss::PeerClosed, rig.now * 1000);
    let s = rig.engine.stats();
    assert_eq!(s.timeline[1].failures, 10, "every device had one in flight");
    assert_eq!(s.timeline[1].rejected, 0);
    assert_eq!(s.errors, 10);
    assert_eq!(s.connections_lost[LinkLoss::PeerClosed as usize], 1);
}
