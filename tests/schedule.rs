//! Device identities, ramp start times and the open-loop schedule, with a fake clock.

use regstorm::load::profile::Profile;
use regstorm::load::schedule::{branch, devices, start_us, Identity, OpenLoop, RampOrder, Turn};
use std::collections::HashSet;

#[test]
fn identities_are_stable_distinct_and_reproducible() {
    let a = Identity::new(1_000_000, 7, 1);
    assert_eq!(a, Identity::new(1_000_000, 7, 1), "same seed, same device");
    assert_eq!(a.user(), "1000007");
    assert_eq!(a.device(), "CSF1000007");
    assert!(a.instance().starts_with("<urn:uuid:") && a.instance().ends_with('>'));
    assert_eq!(a.instance().len(), "<urn:uuid:>".len() + 36);
    assert_eq!(a.contact_user().len(), 36);
    let b = Identity::new(1_000_000, 7, 2);
    assert_ne!(a.call_id(), b.call_id(), "another seed, other random parts");
    let ids: HashSet<String> = (0..10_000)
        .map(|i| Identity::new(1_000_000, i, 1).call_id().to_string())
        .collect();
    assert_eq!(ids.len(), 10_000);
    let instances: HashSet<String> = (0..10_000)
        .map(|i| Identity::new(1_000_000, i, 1).instance().to_string())
        .collect();
    assert_eq!(instances.len(), 10_000);
}

#[test]
fn every_request_gets_a_new_branch_with_the_magic_cookie() {
    let branches: HashSet<String> = (0..100)
        .flat_map(|d| (1..50).map(move |c| branch(1, d, c).to_string()))
        .collect();
    assert_eq!(branches.len(), 100 * 49);
    assert!(branches.iter().all(|b| b.starts_with("z9hG4bK")));
    assert!(branches.iter().all(|b| b.len() == 23
        && b[7..]
            .bytes()
            .all(|c| c.is_ascii_digit() || (b'a'..=b'f').contains(&c))));
}

#[test]
fn devices_start_spread_over_the_ramp() {
    // Microseconds.
    assert_eq!(start_us(5_000_000, 10, 1000, 0), 5_000_000);
    assert_eq!(start_us(5_000_000, 10, 1000, 500), 10_000_000);
    assert_eq!(start_us(5_000_000, 10, 1000, 999), 14_990_000);
    assert_eq!(
        start_us(5_000_000, 0, 1000, 999),
        5_000_000,
        "no ramp: all at once (storm)"
    );
    let p = Profile::find("ci").unwrap();
    let ds = devices(&p, 0);
    assert_eq!(ds.len() as u64, p.devices);
}

#[test]
fn the_ramp_order_is_a_permutation_that_spreads_every_connection_over_the_ramp() {
    for n in [1u64, 2, 3, 10, 200, 1000, 9000, 100_003, 1_000_000] {
        let order = RampOrder::new(n);
        let mut seen = vec![false; n as usize];
        for i in 0..n {
            let place = order.place(i) as usize;
            assert!(!seen[place], "n={n}: place {place} given twice");
            seen[place] = true;
        }
    }
    // 1,000,000 devices over 100 connections (10,000 consecutive numbers each, as the engine
    // gives them out): each connection's devices arrive all over the ramp, every tenth of it
    // holding about a tenth of them, not in one burst after another.
    let (n, per_link) = (1_000_000u64, 10_000u64);
    let order = RampOrder::new(n);
    for link in [0, 37, 99] {
        let mut tenths = [0u64; 10];
        for i in link * per_link..(link + 1) * per_link {
            tenths[(order.place(i) * 10 / n) as usize] += 1;
        }
        assert!(
            tenths.iter().all(|&c| (900..=1100).contains(&c)),
            "connection {link}: {tenths:?}"
        );
    }
}

#[test]
fn open_loop_offers_the_rate_from_intended_times() {
    let mut s = OpenLoop::new(1_000_000, 100.0); // one turn every 10 ms (times in µs)
    let mut sent = Vec::new();
    for now in (1_000_000..2_000_000).step_by(1000) {
        while let Some(t) = s.next(now, 4, |_| true) {
            sent.push(t);
        }
    }
    assert_eq!(s.offered(), 100);
    assert_eq!(
        sent[..3],
        [
            Turn::Send {
                index: 0,
                intended_us: 1_000_000
            },
            Turn::Send {
                index: 1,
                intended_us: 1_010_000
            },
            Turn::Send {
                index: 2,
                intended_us: 1_020_000
            },
        ]
    );
}

#[test]
fn a_late_engine_keeps_the_intended_times_and_busy_devices_are_skipped() {
    // One turn per µs; the engine wakes up 5 µs late: the turns due each keep their own
    // intended time.
    let mut s = OpenLoop::new(0, 1_000_000.0);
    let mut turns = Vec::new();
    while let Some(t) = s.next(5, 3, |i| i != 1) {
        turns.push(t);
    }
    assert_eq!(turns.len(), 6, "turns 0..=5 are due at 5 µs");
    let intended: Vec<u64> = turns
        .iter()
        .map(|t| match t {
            Turn::Send { intended_us, .. } | Turn::Missed { intended_us } => *intended_us,
        })
        .collect();
    assert_eq!(intended, [0, 1, 2, 3, 4, 5]);
    // Device 1 is busy: the turns alternate between 0 and 2.
    let who: Vec<usize> = turns
        .iter()
        .filter_map(|t| match t {
            Turn::Send { index, .. } => Some(*index),
            Turn::Missed { .. } => None,
        })
        .collect();
    assert_eq!(who, [0, 2, 0, 2, 0, 2]);
    // Nobody idle: the turn is missed, and still offered.
    let before = s.offered();
    assert_eq!(
        s.next(6, 3, |_| false),
        Some(Turn::Missed { intended_us: 6 })
    );
    assert_eq!(s.offered(), before + 1);
}

/// The engine finds the device an answer is for from the user number its Call-ID carries
/// (no map of every Call-ID), so every identity's Call-ID must give its user back, and other
/// shapes none.
#[test]
fn a_call_id_gives_back_its_user_number() {
    use regstorm::load::schedule::call_id_user;
    for (start, i) in [
        (1_000_000u64, 0u64),
        (1_000_000, 2_699_999),
        (u64::from(u32::MAX) - 3, 7),
    ] {
        let id = Identity::new(start, i, 42);
        assert_eq!(
            call_id_user(id.call_id().as_bytes()),
            Some((start + i) as u32),
            "{}",
            id.call_id()
        );
    }
    for other in [
        "",
        "88232345-12340017-00001c0b-00000cfa@10.10.10.10",
        "0000000a-0000000b-0000000g@10.0.0.1",
        "0000000a-0000000b-0000000c",
        "0000000a_0000000b-0000000c@x",
    ] {
        assert_eq!(call_id_user(other.as_bytes()), None, "{other}");
    }
}

/// The identity is written by hand into a stack buffer (the engine builds it for every
/// REGISTER); these are the same parts written with `format!`, as the engine once kept them.
fn identity_by_format(user_start: u64, index: u64, seed: u64) -> [String; 6] {
    use regstorm::mix::splitmix64 as splitmix;
    let user = user_start.wrapping_add(index);
    let r = |k: u64| splitmix(seed ^ splitmix(user ^ (k << 56)));
    let uuid = |a: u64, b: u64| {
        format!(
            "{:08x}-{:04x}-{:04x}-{:04x}-{:012x}",
            a >> 32,
            (a >> 16) & 0xffff,
            a & 0xffff,
            b >> 48,
            b & 0xffff_ffff_ffff
        )
    };
    [
        user.to_string(),
        format!(
            "{:08x}-{:08x}-{:08x}@10.0.0.1",
            r(1) as u32,
            r(2) as u32,
            user as u32
        ),
        format!("{:016x}", r(3)),
        uuid(r(4), r(5)),
        format!("<urn:uuid:{}>", uuid(r(6), r(7))),
        format!("CSF{user}"),
    ]
}

proptest::proptest! {
    #[test]
    fn an_identity_is_what_format_writes(
        start in proptest::prelude::any::<u64>(),
        index in 0u64..10_000_000,
        seed in proptest::prelude::any::<u64>(),
    ) {
        let start = start.min(u64::MAX - index);
        let id = Identity::new(start, index, seed);
        let got = [id.user(), id.call_id(), id.from_tag(), id.contact_user(), id.instance(), id.device()];
        proptest::prop_assert_eq!(got.map(str::to_string), identity_by_format(start, index, seed));
        proptest::prop_assert!(Identity::is_call_id(start, index, seed, id.call_id().as_bytes()));
        let mut other = id.call_id().as_bytes().to_vec();
        other[3] ^= 1;
        proptest::prop_assert!(!Identity::is_call_id(start, index, seed, &other));
    }
}

/// The branch's digits are written in one register (as the identity's are): the same as
/// `format!("{:016x}")` of the value they come from.
#[test]
fn a_branch_is_the_cookie_and_sixteen_hex_digits_of_its_value() {
    use regstorm::mix::splitmix64 as splitmix;
    for (seed, device, cseq) in [
        (0u64, 0u64, 0u32),
        (1, 7, 3),
        (u64::MAX, u64::MAX, u32::MAX),
        (42, 1 << 40, 9),
    ] {
        let v = splitmix(seed ^ splitmix(device) ^ (u64::from(cseq) << 40));
        assert_eq!(
            branch(seed, device, cseq).to_string(),
            format!("z9hG4bK{v:016x}")
        );
    }
}
