//! The admission policy with a fake clock (src/registrar/admission.rs): budgets per tick,
//! the CoDel-like reaction to a standing queue, the retry calendar, the accept rate.

use regstorm::auth::Digest;
use regstorm::registrar::{Admission, AdmissionConfig};
use std::sync::atomic::{AtomicU64, Ordering};

const T0: u64 = 1_800_000_000_000_000;
const TICK: u64 = 10_000;

/// Ticks every 10 ms from `from` for `ticks` ticks with the same queueing delay.
fn run(a: &mut Admission, from: u64, ticks: u64, delay_us: u64) -> u64 {
    let mut now = from;
    for _ in 0..ticks {
        now += TICK;
        a.on_tick(now, delay_us);
    }
    now
}

/// A token never seen before (its digest).
fn fresh() -> Digest {
    static NEXT: AtomicU64 = AtomicU64::new(1);
    token(NEXT.fetch_add(1, Ordering::Relaxed))
}

fn token(i: u64) -> Digest {
    let mut d = [0u8; 32];
    d[..8].copy_from_slice(&regstorm::mix::splitmix64(i).to_le_bytes());
    d
}

/// Admits fresh tokens until the first refusal; returns how many were admitted.
fn drain(a: &mut Admission) -> u64 {
    let mut n = 0;
    while a.admit_verification(&fresh()) {
        n += 1;
        assert!(n < 1_000_000, "no budget limit");
    }
    n
}

/// `n` tokens numbered from `first`, each refused (and so given a place on the calendar).
fn send_away(a: &mut Admission, first: u64, n: u64) -> Vec<Digest> {
    let tokens: Vec<Digest> = (first..first + n).map(token).collect();
    for d in &tokens {
        assert!(!a.admit_verification(d));
    }
    tokens
}

#[test]
fn a_burst_into_an_idle_core_is_verified_not_shed() {
    let mut a = Admission::new(AdmissionConfig::default(), 1);
    a.on_tick(T0, 0);
    // An idle core has saved up burst_ticks of verification time: 0.8 x 500 ms at 50 µs.
    for _ in 0..1000 {
        assert!(a.admit_verification(&fresh()));
    }
    assert_eq!(a.stats().verify_shed, 0);
}

#[test]
fn the_budget_per_tick_follows_the_measured_cost() {
    let mut a = Admission::new(AdmissionConfig::default(), 1);
    a.on_tick(T0, 0);
    for _ in 0..20 {
        a.observe_cost(25 * 20, 20); // 25 µs a verification, as measured
    }
    drain(&mut a);
    let now = run(&mut a, T0, 1, 0);
    // One tick earns share x tick = 0.8 x 10 ms: about 320 verifications at ~25 µs.
    let n = drain(&mut a);
    assert!((300..=345).contains(&n), "{n}");
    let rate = a.verify_rate_per_s();
    assert!((30_000.0..34_000.0).contains(&rate), "{rate}");
    // A tick that comes late while tokens wait (the core was busy, or descheduled) earns
    // two ticks at most, not its whole lateness: no burst that makes the next tick later.
    let now = now + 30 * TICK;
    a.on_tick(now, 0);
    let n = drain(&mut a);
    assert!((600..=680).contains(&n), "{n}");
    // After a tick with nothing asked, lateness is idle time and is saved up: one tick's
    // 8 ms, then the 24 ms of three more, about 1,280 verifications at ~25 µs.
    a.on_tick(now + TICK, 0);
    a.on_tick(now + 4 * TICK, 0);
    let n = drain(&mut a);
    assert!((1_200..=1_360).contains(&n), "{n}");
    // Samples err high (a read's other work is charged too): a higher one moves the estimate
    // a little, a sustained higher cost (a slower key type) moves it all the way.
    a.observe_cost(100, 1);
    assert!(a.verify_rate_per_s() > 28_000.0);
    for _ in 0..400 {
        a.observe_cost(100, 1);
    }
    let cost_us = a.share() * 1e6 / a.verify_rate_per_s();
    assert!((94.0..106.0).contains(&cost_us), "{cost_us}");
}

#[test]
fn a_standing_queue_cuts_the_share_and_its_end_gives_it_back() {
    let mut a = Admission::new(AdmissionConfig::default(), 1);
    let start = a.share();
    // 150 ms of queueing delay on every tick for a second: a standing queue.
    let now = run(&mut a, T0, 100, 150_000);
    assert!(a.share() < start * 0.6, "share {}", a.share());
    assert!(a.stats().standing_queues >= 3);
    let cut = a.share();
    assert!(cut >= AdmissionConfig::default().share_min);
    // The queue is gone: the share grows back, step by step, up to its bound.
    run(&mut a, now, 200, 500);
    assert!(a.share() > cut);
    assert!(a.share() <= AdmissionConfig::default().share_max + 1e-9);
}

#[test]
fn a_burst_that_drains_within_the_interval_cuts_nothing() {
    let mut a = Admission::new(AdmissionConfig::default(), 1);
    let start = a.share();
    let mut now = T0;
    // One tick in ten is 50 ms late (a burst, a descheduled thread); the others are on time:
    // the smallest delay of each interval is small, so no standing queue is declared.
    for i in 0..100 {
        now += TICK;
        a.on_tick(now, if i % 10 == 0 { 50_000 } else { 200 });
    }
    assert_eq!(a.stats().standing_queues, 0);
    assert!(a.share() >= start);
}

#[test]
fn beyond_the_budget_503s_come_back_spread_at_the_verify_rate() {
    let cfg = AdmissionConfig {
        retry_max_s: 120,
        ..AdmissionConfig::default()
    };
    let mut a = Admission::new(cfg, 42);
    a.on_tick(T0, 0);
    for _ in 0..40 {
        a.observe_cost(100, 1); // 100 µs: 8,000 verifications a second at share 0.8
    }
    drain(&mut a);
    let rate = a.calendar_rate_per_s();
    // 40,000 refused in one tick: told to come back over about 40,000 / rate seconds.
    let mut per_second = std::collections::BTreeMap::<u32, u32>::new();
    for _ in 0..40_000 {
        assert!(!a.admit_verification(&fresh()));
        *per_second.entry(a.last_retry_after_s()).or_default() += 1;
    }
    let first = *per_second.keys().next().unwrap();
    let last = *per_second.keys().last().unwrap();
    assert!(first >= 1);
    let window = 40_000.0 / rate;
    assert!(
        (f64::from(last - first) - window).abs() <= 2.0,
        "{first}..{last} for {window:.1} s"
    );
    // No second gets much more than the rate: a spread, not a wave.
    let busiest = *per_second.values().max().unwrap();
    assert!(
        f64::from(busiest) <= rate * 1.5,
        "{busiest} in one second at {rate:.0}/s"
    );
}

#[test]
fn the_calendar_hands_out_what_the_core_got_through_while_shedding() {
    let mut a = Admission::new(AdmissionConfig::default(), 9);
    let mut now = T0;
    a.on_tick(now, 0);
    drain(&mut a);
    let before = a.stats().verify_admitted;
    // Demand beyond the budget for a second: every tick's budget is spent and more is shed.
    for _ in 0..100 {
        now += TICK;
        a.on_tick(now, 0);
        drain(&mut a);
    }
    assert!(a.stats().verify_shed >= 100);
    let got = (a.stats().verify_admitted - before) as f64;
    let rate = a.calendar_rate_per_s();
    // At least what the core really admitted per second, whatever the estimate says.
    assert!(
        rate >= got * 0.75,
        "calendar {rate:.0}/s, admitted {got:.0} in 1 s"
    );
}

#[test]
fn retry_after_never_exceeds_the_configured_maximum() {
    let cfg = AdmissionConfig {
        retry_max_s: 35,
        ..AdmissionConfig::default()
    };
    let mut a = Admission::new(cfg, 3);
    a.on_tick(T0, 0);
    drain(&mut a);
    let mut seen = Vec::new();
    // 16,000 verifications a second (50 µs at share 0.8): 35 s of calendar is 560,000.
    for _ in 0..800_000 {
        a.admit_verification(&fresh());
        seen.push(a.last_retry_after_s());
    }
    assert!(seen.iter().all(|&s| (1..=35).contains(&s)));
    // Once the calendar is full, the late ones spread over the second half of the window.
    let tail = &seen[600_000..];
    assert!(tail.iter().all(|&s| s >= 17), "{:?}", &tail[..10]);
    assert!(tail.iter().min() != tail.iter().max());
}

#[test]
fn the_calendar_empties_when_the_storm_is_over() {
    let mut a = Admission::new(AdmissionConfig::default(), 5);
    a.on_tick(T0, 0);
    drain(&mut a);
    for _ in 0..10_000 {
        a.admit_verification(&fresh());
    }
    assert_eq!(a.reservations(), 10_001); // and the refusal that ended drain()
                                          // Minutes later the earlier promises are in the past: a new refusal waits little, and the
                                          // places of devices that never came back are given up.
    a.on_tick(T0 + 600_000_000, 0);
    assert_eq!(a.reservations(), 0);
    drain(&mut a);
    a.admit_verification(&fresh());
    assert!(a.last_retry_after_s() <= 2);
}

#[test]
fn a_connection_flood_is_taken_at_a_bounded_rate_per_tick() {
    let cfg = AdmissionConfig::default();
    let mut a = Admission::new(cfg, 1);
    a.on_tick(T0, 0);
    let taken = (0..10_000).take_while(|_| a.admit_connection()).count();
    assert_eq!(taken as u32, cfg.accepts_start);
    assert_eq!(a.stats().connections_deferred, 1);
    // The next tick takes as many again; under a standing queue fewer.
    let now = run(&mut a, T0, 1, 0);
    assert_eq!(
        (0..10_000).take_while(|_| a.admit_connection()).count() as u32,
        cfg.accepts_start
    );
    run(&mut a, now, 100, 150_000);
    let under_queue = (0..10_000).take_while(|_| a.admit_connection()).count() as u32;
    assert!(under_queue < cfg.accepts_start, "{under_queue}");
    assert!(under_queue >= cfg.accepts_min);
}

#[test]
fn an_idle_core_is_probed_rarely() {
    let mut a = Admission::new(AdmissionConfig::default(), 1);
    a.on_tick(T0, 0);
    assert_eq!(a.next_tick_in_us(), 100_000);
    a.admit_verification(&fresh());
    assert_eq!(a.next_tick_in_us(), 10_000);
}

#[test]
fn a_device_sent_away_is_verified_when_it_comes_back_ahead_of_new_ones() {
    let mut a = Admission::new(AdmissionConfig::default(), 11);
    let mut now = T0;
    a.on_tick(now, 0);
    drain(&mut a);
    // 20,000 devices are sent away with a place each.
    let waiting = send_away(&mut a, 1_000_000, 20_000);
    assert_eq!(a.reservations(), 20_001); // and the refusal that ended drain()
                                          // Later, with new arrivals taking every tick's budget, the returning ones still pass, and
                                          // the new ones are the ones sent away.
    now += 2_000_000;
    a.on_tick(now, 0);
    drain(&mut a);
    for d in &waiting[..100] {
        assert!(a.admit_verification(d), "a returning device is verified");
    }
    assert_eq!(a.stats().verify_returned, 100);
    assert!(!a.admit_verification(&fresh()));
    // Its place is used up: the same token again, with the budget spent, is sent away anew.
    assert!(!a.admit_verification(&waiting[0]));
    assert_eq!(a.stats().verify_returned, 100);
    // A core deep in debt does not take even the returning ones (it sheds them to a new place).
    for d in &waiting[100..] {
        a.admit_verification(d);
    }
    // The debt allowed is the queueing target's worth, 0.9 x 100 ms at 50 µs: about 1,800
    // verifications (with the tick's own budget).
    let returned = a.stats().verify_returned;
    assert!(
        (1_500..2_400).contains(&returned),
        "{returned}: bounded by the target's worth of debt"
    );
    // The others came back to their place and were sent away again, counted as such.
    assert_eq!(a.stats().verify_shed_again, 19_900 - (returned - 100));
    assert!(a.reservations() > 0);
}

#[test]
fn a_policy_nobody_ticks_admits_everything_and_counts_it() {
    let mut a = Admission::unlimited();
    for _ in 0..100_000 {
        assert!(a.admit_verification(&fresh()));
    }
    assert!((0..10_000).all(|_| a.admit_connection()));
    assert_eq!(a.stats().verify_admitted, 100_000);
    assert_eq!(a.stats().verify_shed, 0);
}

#[test]
fn devices_coming_back_at_the_budgets_pace_are_all_verified_during_a_storm() {
    let mut a = Admission::new(AdmissionConfig::default(), 5);
    let mut now = T0;
    a.on_tick(now, 0);
    drain(&mut a);
    // 3,000 devices sent away, each with a place on the calendar.
    let waiting = send_away(&mut a, 2_000_000, 3_000);
    // The first places come due a second later (Retry-After 1); what the core saved up
    // meanwhile goes to new tokens.
    now += 1_000_000;
    a.on_tick(now, 0);
    drain(&mut a);
    // A storm goes on: every 10 ms tick, 400 new tokens arrive before the returning devices,
    // which come back 150 a tick (a tick's budget is 0.8 to 0.9 x 10 ms at 50 µs: 160 to 180).
    let mut new_admitted = 0;
    for back in waiting.chunks(150) {
        now += TICK;
        a.on_tick(now, 0);
        new_admitted += (0..400).filter(|_| a.admit_verification(&fresh())).count();
        for d in back {
            assert!(
                a.admit_verification(d),
                "a device coming back to its place is verified"
            );
        }
    }
    let s = a.stats();
    assert_eq!((s.verify_returned, s.verify_shed_again), (3_000, 0));
    // What the returning devices leave of each tick still goes to new tokens.
    assert!(new_admitted > 0, "new tokens took the rest of the budget");
    assert!(new_admitted < 20 * 40, "{new_admitted}: only the rest");
}
