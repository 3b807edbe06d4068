//! The load engine's due wheel (src/load/wheel.rs): whatever the pattern of pushes and takes,
//! every entry comes out exactly once, at the first take whose `now` reaches its time, never
//! before, as from a plain priority queue.

use proptest::prelude::*;
use regstorm::load::wheel::DueWheel;

#[derive(Clone, Debug)]
enum Op {
    /// An entry due this far after the current time (may reach past the horizon).
    Push(u64),
    /// An entry due in the past (a device queued late).
    PushPast(u64),
    /// Time moves on this far, then a take.
    Take(u64),
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        4 => (0u64..400).prop_map(Op::Push),
        1 => (400u64..5_000).prop_map(Op::Push),
        1 => (0u64..300).prop_map(Op::PushPast),
        3 => (0u64..120).prop_map(Op::Take),
        1 => (0u64..3_000).prop_map(Op::Take),
    ]
}

/// Takes until a take comes back empty, as the engine does.
fn take_all(w: &mut DueWheel, now: u64) -> Vec<(u64, u32)> {
    let mut all = Vec::new();
    loop {
        let mut out = Vec::new();
        w.take_due(now, &mut out);
        if out.is_empty() {
            return all;
        }
        all.extend(out);
    }
}

proptest! {
    #[test]
    fn every_entry_comes_out_once_when_due_and_never_early(
        start in 0u64..1_000_000,
        ops in prop::collection::vec(op(), 1..300),
    ) {
        // 16 slots of 10: a horizon of 160, so pushes reach past it often.
        let mut w = DueWheel::new(10, 16, start);
        let mut now = start;
        let mut pending: Vec<(u64, u32)> = Vec::new();
        let mut next = 0u32;
        for op in ops {
            match op {
                Op::Push(d) | Op::PushPast(d) => {
                    let at = if matches!(op, Op::Push(_)) { now + d } else { now.saturating_sub(d) };
                    w.push(at, next);
                    pending.push((at, next));
                    next += 1;
                }
                Op::Take(d) => {
                    now += d;
                    let taken = take_all(&mut w, now);
                    let mut due: Vec<_> = pending.iter().copied().filter(|&(at, _)| at <= now).collect();
                    pending.retain(|&(at, _)| at > now);
                    for &(at, _) in &taken {
                        prop_assert!(at <= now, "taken early: {at} > {now}");
                    }
                    let mut got = taken.clone();
                    got.sort_unstable();
                    due.sort_unstable();
                    prop_assert_eq!(got, due);
                    prop_assert_eq!(w.len(), pending.len());
                }
            }
        }
        let earliest = pending.iter().map(|&(at, _)| at).min();
        prop_assert_eq!(w.earliest(), earliest);
    }
}

#[test]
fn a_jump_past_the_horizon_takes_everything_due_and_keeps_the_rest() {
    let mut w = DueWheel::new(10, 4, 0);
    for (at, i) in [(5, 0), (15, 1), (35, 2), (500, 3), (1_000, 4)] {
        w.push(at, i);
    }
    let taken = take_all(&mut w, 600);
    assert_eq!(taken, vec![(5, 0), (15, 1), (35, 2), (500, 3)]);
    assert_eq!(w.len(), 1);
    assert_eq!(take_all(&mut w, 999), vec![]);
    assert_eq!(take_all(&mut w, 1_000), vec![(1_000, 4)]);
    assert!(w.is_empty());
}

#[test]
fn an_entry_pushed_for_a_time_already_past_is_taken_at_the_next_take() {
    let mut w = DueWheel::new(10, 8, 100);
    assert_eq!(take_all(&mut w, 250), vec![]);
    w.push(120, 7);
    w.push(251, 8);
    assert_eq!(take_all(&mut w, 250), vec![(120, 7)]);
    assert_eq!(take_all(&mut w, 251), vec![(251, 8)]);
}
