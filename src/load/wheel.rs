//! When each device falls due: a timing wheel of fixed slots over a horizon, with a heap for
//! what lies beyond it.
//!
//! The engine asks, every tick, for the devices due by now. A binary heap of a million
//! entries answers that with a sift through twenty levels of a 21 MB array per device, each
//! level a likely cache miss: a fifth of the engine's CPU in a 3x overload storm (perf, by
//! hand: results/storm-20261203c/engine-profile.md). Here a device goes into the slot of its
//! time (`push` is one append) and a tick takes whole slots, in time order between slots;
//! within a slot the order is the order of arrival, which a tick does not see (it sends
//! everything due in one turn).
//! Entries further than the horizon wait in a heap and move into the wheel as it turns; with a
//! horizon of minutes that is only the rare long `Retry-After`.
//!
//! Nothing here reads a clock: time comes in as `now` (µs), as everywhere in the engine.

use std::cmp::Reverse;
use std::collections::BinaryHeap;

/// A set of (time, device) entries taken in time order, a slot at a time.
#[derive(Debug)]
pub struct DueWheel {
    width_us: u64,
    slots: Vec<Vec<(u64, u32)>>,
    /// The slot number (time / width) of the earliest slot not yet taken whole: entries of
    /// earlier times pushed late go into it.
    cursor: u64,
    /// Entries at or beyond `cursor + slots.len()` slots.
    far: BinaryHeap<Reverse<(u64, u32)>>,
    len: usize,
}

impl DueWheel {
    /// A wheel of `slots` slots of `width_us` each (its horizon is their product), starting
    /// at time `start_us`.
    pub fn new(width_us: u64, slots: usize, start_us: u64) -> Self {
        let width_us = width_us.max(1);
        DueWheel {
            width_us,
            slots: (0..slots.max(1)).map(|_| Vec::new()).collect(),
            cursor: start_us / width_us,
            far: BinaryHeap::new(),
            len: 0,
        }
    }

    pub fn len(&self) -> usize {
        self.len
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Forgets every entry and starts again at `start_us`.
    pub fn clear(&mut self, start_us: u64) {
        for s in &mut self.slots {
            s.clear();
        }
        self.far.clear();
        self.cursor = start_us / self.width_us;
        self.len = 0;
    }

    /// Adds device `i` due at `at_us` (a time already past is due at the next take).
    pub fn push(&mut self, at_us: u64, i: u32) {
        self.len += 1;
        let slot = (at_us / self.width_us).max(self.cursor);
        if slot - self.cursor >= self.slots.len() as u64 {
            self.far.push(Reverse((at_us, i)));
        } else {
            let n = self.slots.len() as u64;
            self.slots[(slot % n) as usize].push((at_us, i));
        }
    }

    /// Moves every entry due at or before `now_us` into `out` (appended, earlier slots
    /// first). Entries pushed while the caller handles `out` are taken by the next call, even
    /// those already due: call until `out` comes back empty.
    pub fn take_due(&mut self, now_us: u64, out: &mut Vec<(u64, u32)>) {
        let n = self.slots.len() as u64;
        let now_slot = now_us / self.width_us;
        if now_slot >= self.cursor + n {
            // A jump past the whole horizon (a long stall, or the first take after a start):
            // everything on the wheel is due. Taken in slot order, then the wheel stands at now.
            for k in 0..n {
                let slot = &mut self.slots[((self.cursor + k) % n) as usize];
                self.len -= slot.len();
                out.append(slot);
            }
            self.cursor = now_slot;
        }
        while self.cursor <= now_slot {
            // The wheel turns to this slot: what the heap holds for it comes in first.
            while let Some(&Reverse((at, i))) = self.far.peek() {
                if at / self.width_us >= self.cursor + n {
                    break;
                }
                self.far.pop();
                let slot = (at / self.width_us).max(self.cursor);
                self.slots[(slot % n) as usize].push((at, i));
            }
            let slot = &mut self.slots[(self.cursor % n) as usize];
            if self.cursor < now_slot {
                // Wholly past: all of it.
                self.len -= slot.len();
                out.append(slot);
                self.cursor += 1;
            } else {
                // The slot `now` is in: what is due, the rest stays (the cursor stays too, so
                // late pushes for past times land here).
                let before = out.len();
                slot.retain(|&(at, i)| {
                    if at <= now_us {
                        out.push((at, i));
                        false
                    } else {
                        true
                    }
                });
                self.len -= out.len() - before;
                break;
            }
        }
    }

    /// The earliest time of any entry, if any (a scan of the wheel: for tests and reports,
    /// not for the tick).
    pub fn earliest(&self) -> Option<u64> {
        let wheel = self.slots.iter().flatten().map(|&(at, _)| at).min();
        let far = self.far.peek().map(|Reverse((at, _))| *at);
        match (wheel, far) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        }
    }
}
