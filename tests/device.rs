//! The simulated Jabber device with a fake clock: the 407 -> 200 flow, re-registration on the
//! schedule, token refresh at 75 %, invalid_token, Retry-After, parking, reconnect backoff,
//! timeouts, and latency from the intended send time.

use regstorm::load::device::{Answer, Device, Done, Request, Timing, Want};

/// The device in milliseconds (it runs on microseconds): times in and out are converted, so
/// the tests read in the units of the profile; latencies stay in microseconds.
struct D(Device);

fn ms(w: Want) -> Want {
    match w {
        Want::Wait { at } => Want::Wait {
            // Rounded up: polling at the returned millisecond is never early.
            at: if at == u64::MAX {
                at
            } else {
                at.div_ceil(1000)
            },
        },
        Want::Send(r) => Want::Send(Request {
            intended_us: r.intended_us / 1000,
            ..r
        }),
        other => other,
    }
}

impl D {
    fn new(t: Timing, start: u64, seed: u64) -> D {
        D(Device::new(t, start * 1000, seed))
    }
    fn poll(&mut self, now: u64) -> Want {
        ms(self.0.poll(now.saturating_mul(1000)))
    }
    fn connected(&mut self, now: u64) {
        self.0.connected(now * 1000)
    }
    fn disconnected(&mut self, now: u64) -> Option<Done> {
        self.0.disconnected(now * 1000)
    }
    fn answered(&mut self, now: u64, a: &Answer) -> Option<Done> {
        self.0.answered(now * 1000, a)
    }
    fn token_minted(&mut self, now: u64) {
        self.0.token_minted(now * 1000)
    }
    fn in_flight(&self) -> bool {
        self.0.in_flight()
    }
    fn is_parked(&self) -> bool {
        self.0.is_parked()
    }
}

/// Unified CM's values (the defaults): 120 s re-registration, 60-minute tokens, Timer F,
/// reconnect backoff 1 s to 60 s.
fn timing() -> Timing {
    Timing::default()
}

fn ok(expires: u32) -> Answer {
    Answer {
        status: 200,
        expires_s: Some(expires),
        ..Answer::default()
    }
}

fn status(status: u16) -> Answer {
    Answer {
        status,
        ..Answer::default()
    }
}

fn send(w: Want) -> Request {
    match w {
        Want::Send(r) => r,
        other => panic!("expected a REGISTER, got {other:?}"),
    }
}

/// Connects and registers through the challenge; returns the time of the 200.
fn register(d: &mut D, t: u64) -> u64 {
    assert_eq!(d.poll(t), Want::Connect);
    d.connected(t);
    let r = send(d.poll(t));
    assert!(!r.with_token);
    d.answered(t + 5, &status(407)).unwrap();
    assert_eq!(d.poll(t + 5), Want::Token);
    d.token_minted(t + 5);
    let r = send(d.poll(t + 5));
    assert!(r.with_token);
    d.answered(t + 10, &ok(120)).unwrap();
    t + 10
}

#[test]
fn jabber_flow_challenge_then_token_then_200() {
    let mut d = D::new(timing(), 1_000, 1);
    assert_eq!(d.poll(0), Want::Wait { at: 1_000 }, "not before its start");
    assert_eq!(d.poll(1_000), Want::Connect);
    d.connected(1_000);
    let first = send(d.poll(1_000));
    assert_eq!(
        first,
        Request {
            cseq: 1,
            with_token: false,
            intended_us: 1_000,
            retry: false,
        }
    );
    assert!(d.in_flight());
    assert_eq!(
        d.poll(1_002),
        Want::Wait { at: 33_000 },
        "waits for the answer until Timer F"
    );
    let done = d.answered(1_004, &status(407)).unwrap();
    assert_eq!(
        done,
        Done {
            status: 407,
            latency_us: 4_000
        }
    );
    assert_eq!(d.poll(1_004), Want::Token);
    d.token_minted(1_004);
    let second = send(d.poll(1_004));
    assert_eq!((second.cseq, second.with_token), (2, true));
    d.answered(1_010, &ok(120)).unwrap();
    // Re-REGISTER after min(reregister 120 s, 0.9 x 120 s) = 108 s, with the same token.
    assert_eq!(d.poll(1_011), Want::Wait { at: 109_010 });
    let third = send(d.poll(109_010));
    assert_eq!((third.cseq, third.with_token), (3, true));
}

#[test]
fn without_challenge_first_the_token_goes_in_the_first_register() {
    let mut d = D::new(
        Timing {
            challenge_first: false,
            ..timing()
        },
        0,
        1,
    );
    assert_eq!(d.poll(0), Want::Connect);
    d.connected(0);
    assert_eq!(d.poll(0), Want::Token);
    d.token_minted(0);
    assert!(send(d.poll(0)).with_token);
}

#[test]
fn reregister_zero_goes_at_once_and_the_shorter_of_period_and_expires_wins() {
    let mut d = D::new(
        Timing {
            reregister_ms: 0,
            ..timing()
        },
        0,
        1,
    );
    let t = register(&mut d, 0);
    assert_eq!(send(d.poll(t)).intended_us, t, "reregister_s = 0: at once");
    let mut d = D::new(timing(), 0, 1);
    let t = register(&mut d, 0);
    // Granted 120: 0.9 x 120 s = 108 s < 120 s.
    assert_eq!(d.poll(t), Want::Wait { at: t + 108_000 });
    let r = send(d.poll(t + 108_000));
    d.answered(t + 108_000, &ok(60)).unwrap();
    // Granted 60 (clamped by the registrar): 54 s.
    assert_eq!(d.poll(t + 108_000), Want::Wait { at: t + 162_000 });
    assert_eq!(r.cseq, 3);
}

#[test]
fn a_fresh_token_at_75_percent_of_its_lifetime() {
    let mut d = D::new(
        Timing {
            reregister_ms: 10_000,
            token_ttl_s: 100,
            ..timing()
        },
        0,
        1,
    );
    let mut t = register(&mut d, 0);
    let mut minted = 5;
    let mut tokens = 1;
    // Re-register every 10 s for 300 s; a new token at the first REGISTER once the held one
    // is 75 s old, never before.
    while t < 300_000 {
        t += 10_000;
        let w = d.poll(t);
        let r = if w == Want::Token {
            assert!(t - minted >= 75_000, "refreshed early at {t}");
            assert!(t - 10_000 - minted < 75_000, "refreshed late at {t}");
            d.token_minted(t);
            minted = t;
            tokens += 1;
            send(d.poll(t))
        } else {
            assert!(t - minted < 75_000, "kept a token past 75 % at {t}");
            send(w)
        };
        assert!(r.with_token);
        d.answered(t, &ok(120)).unwrap();
    }
    // 300 s of 100 s tokens refreshed every 75-80 s: the first plus three more.
    assert_eq!(tokens, 4);
}

#[test]
fn invalid_token_takes_a_fresh_one_and_retries_at_once() {
    let mut d = D::new(timing(), 0, 1);
    let t = register(&mut d, 0);
    let r = send(d.poll(t + 108_000));
    assert!(r.with_token);
    d.answered(
        t + 108_010,
        &Answer {
            status: 407,
            invalid_token: true,
            ..Answer::default()
        },
    )
    .unwrap();
    assert_eq!(d.poll(t + 108_010), Want::Token);
    d.token_minted(t + 108_010);
    let retry = send(d.poll(t + 108_010));
    assert_eq!((retry.cseq, retry.with_token), (r.cseq + 1, true));
}

#[test]
fn retry_after_is_honoured_and_403_without_it_parks() {
    for code in [403, 503] {
        let mut d = D::new(timing(), 0, 1);
        let t = register(&mut d, 0);
        send(d.poll(t + 108_000));
        d.answered(
            t + 108_000,
            &Answer {
                status: code,
                retry_after_s: Some(35),
                ..Answer::default()
            },
        )
        .unwrap();
        assert_eq!(d.poll(t + 108_000), Want::Wait { at: t + 143_000 });
        // The REGISTER after the wait is a retry (the timeline counts it apart from the
        // profile's schedule); the one after its 200 is not.
        let again = send(d.poll(t + 143_000));
        assert!(again.retry);
        d.answered(t + 143_010, &status(200)).unwrap();
        let Want::Wait { at } = d.poll(t + 143_010) else {
            panic!("a registered device waits for its next turn");
        };
        assert!(!send(d.poll(at)).retry);
    }
    let mut d = D::new(timing(), 0, 1);
    let t = register(&mut d, 0);
    send(d.poll(t + 108_000));
    d.answered(t + 108_000, &status(403)).unwrap();
    assert!(d.is_parked());
    assert_eq!(d.poll(u64::MAX / 2), Want::Parked);
    // Parked stays parked, even if its connection drops.
    assert_eq!(d.disconnected(t + 200_000), None);
    assert_eq!(d.poll(u64::MAX / 2), Want::Parked);
}

#[test]
fn lost_connections_back_off_with_jitter_and_register_again() {
    let mut d = D::new(timing(), 0, 7);
    let t = register(&mut d, 0);
    // A REGISTER in flight when the connection drops is reported lost.
    let r = send(d.poll(t + 108_000));
    let lost = d.disconnected(t + 108_500).unwrap();
    assert_eq!(
        lost,
        Done {
            status: 0,
            latency_us: 500_000
        }
    );
    let mut now = t + 108_500;
    let mut waits = Vec::new();
    for _ in 0..8 {
        let Want::Wait { at } = d.poll(now) else {
            panic!("expected a wait")
        };
        waits.push(at - now);
        assert_eq!(d.poll(at), Want::Connect);
        now = at;
        assert_eq!(d.disconnected(now), None, "failed to connect");
    }
    // 1, 2, 4, 8, 16, 32, 60, 60 s, each jittered over its upper half.
    let full = [
        1_000, 2_000, 4_000, 8_000, 16_000, 32_000, 60_000, 60_000, 60_000,
    ];
    for (w, f) in waits.iter().zip(full) {
        assert!(*w >= f / 2 && *w <= f, "wait {w} for a backoff of {f}");
    }
    // Back: registers again with the token it holds (no new challenge), CSeq still growing.
    let Want::Wait { at } = d.poll(now) else {
        panic!()
    };
    assert_eq!(d.poll(at), Want::Connect);
    d.connected(at);
    let again = send(d.poll(at));
    assert!(again.with_token);
    assert!(again.cseq > r.cseq);
    d.answered(at + 1, &ok(120)).unwrap();
    // The 200 resets the backoff: the next loss waits about a second again.
    d.disconnected(at + 2);
    let Want::Wait { at: back } = d.poll(at + 2) else {
        panic!()
    };
    assert!(back - (at + 2) <= 1_000);
}

#[test]
fn devices_that_drop_together_come_back_spread_out() {
    let mut backs: Vec<u64> = (0..100)
        .map(|seed| {
            let mut d = D::new(timing(), 0, seed);
            register(&mut d, 0);
            for _ in 0..4 {
                d.disconnected(10_000);
            }
            match d.poll(10_000) {
                Want::Wait { at } => at,
                other => panic!("{other:?}"),
            }
        })
        .collect();
    backs.sort_unstable();
    backs.dedup();
    assert!(
        backs.len() > 50,
        "jitter spreads reconnects: {} distinct",
        backs.len()
    );
}

#[test]
fn no_answer_by_timer_f_is_a_timeout_and_the_device_tries_again() {
    let mut d = D::new(timing(), 0, 1);
    let t = register(&mut d, 0);
    let r = send(d.poll(t + 108_000));
    assert_eq!(d.poll(t + 139_999), Want::Wait { at: t + 140_000 });
    assert_eq!(
        d.poll(t + 140_000),
        Want::TimedOut {
            latency_us: 32_000_000
        }
    );
    assert!(!d.in_flight());
    // A late answer to the timed-out REGISTER changes nothing.
    assert_eq!(d.answered(t + 140_001, &ok(120)), None);
    let Want::Wait { at } = d.poll(t + 140_000) else {
        panic!()
    };
    assert!(at - (t + 140_000) <= 1_000);
    assert_eq!(send(d.poll(at)).cseq, r.cseq + 1);
}

#[test]
fn latency_counts_from_the_intended_time_so_stalls_show() {
    // A registrar that stalls 100 ms: the answer's latency is at least the stall.
    let mut d = D::new(timing(), 0, 1);
    let t = register(&mut d, 0);
    let due = t + 108_000;
    send(d.poll(due));
    let done = d.answered(due + 100, &ok(120)).unwrap();
    assert!(done.latency_us >= 100_000);
    // An engine that gets to the device 250 ms late: the intended time stays the due time,
    // and the latency includes the engine's lag (coordinated omission is not hidden).
    let due = due + 100 + 108_000;
    let r = send(d.poll(due + 250));
    assert_eq!(r.intended_us, due);
    let done = d.answered(due + 260, &ok(120)).unwrap();
    assert_eq!(done.latency_us, 260_000);
}

#[test]
fn batching_slack_is_not_latency_but_lag_beyond_it_is() {
    // The engine sends in ticks of up to 2 ms: a REGISTER it sends within 2 ms of its time
    // counts from when it went out; one it sends later (the engine lagging) counts from its
    // time plus the slack, so the stall still shows.
    let mut d = D::new(
        Timing {
            send_slack_us: 2_000,
            ..timing()
        },
        0,
        1,
    );
    let t = register(&mut d, 0);
    // In µs from here.
    let due = (t + 108_000) * 1000;
    // Sent 1.5 ms late, answered 0.2 ms after sending: 200 µs.
    d.0.poll(due + 1_500);
    let done = d.0.answered(due + 1_700, &ok(120)).unwrap();
    assert_eq!(done.latency_us, 200);
    // Sent 250 ms late (beyond the slack), answered 0.2 ms after sending: 248.2 ms.
    let due = due + 1_700 + 108_000_000;
    d.0.poll(due + 250_000);
    let done = d.0.answered(due + 250_200, &ok(120)).unwrap();
    assert_eq!(done.latency_us, 248_200);
    // A timeout counts the same way: from the send, when that was within the slack.
    let due = due + 250_200 + 108_000_000;
    d.0.poll(due + 1_000);
    let Want::TimedOut { latency_us } = d.0.poll(due + 1_000 + 32_000_000) else {
        panic!("timer F")
    };
    assert_eq!(latency_us, 32_000_000);
}

#[test]
fn devices_turned_away_together_come_back_spread_over_a_fifth_of_retry_after() {
    // A storm's 503s all say Retry-After: 35; a fleet does not return in one instant: each
    // device waits 35 s plus a random 0 to 20 % (7 s).
    let t = Timing {
        retry_jitter_pct: 20,
        ..timing()
    };
    let mut backs: Vec<u64> = (0..200)
        .map(|seed| {
            let mut d = D::new(t, 0, seed);
            let at = register(&mut d, 0);
            send(d.poll(at + 108_000));
            d.answered(
                at + 108_000,
                &Answer {
                    status: 503,
                    retry_after_s: Some(35),
                    ..Answer::default()
                },
            )
            .unwrap();
            match d.poll(at + 108_000) {
                Want::Wait { at: back } => back - (at + 108_000),
                other => panic!("{other:?}"),
            }
        })
        .collect();
    assert!(
        backs.iter().all(|w| (35_000..=42_000).contains(w)),
        "{backs:?}"
    );
    backs.sort_unstable();
    assert!(backs[0] < 36_000 && backs[199] > 41_000, "{backs:?}");
    backs.dedup();
    assert!(backs.len() > 150, "{} distinct", backs.len());
}
