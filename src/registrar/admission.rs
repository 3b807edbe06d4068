//! Admission on one core, without a clock: which work the core takes now, and what it tells
//! the devices it cannot serve yet. Time and the core's queueing delay come in from the
//! runtime's probe tick ([`Admission::on_tick`]); everything else is arithmetic, so every rule
//! here is tested with a fake clock.
//!
//! The classes, highest first:
//! - (a) accepting connections and finishing their handshakes, reading them, and answering
//!   from the token cache (re-registrations, fetches, OPTIONS). Never refused; new connections
//!   are taken at a bounded rate per tick ([`Admission::admit_connection`]) so that a flood of
//!   handshakes cannot starve the connections already up.
//! - (b) fresh token verifications: a share of each tick's time, charged at the measured cost
//!   of one verification ([`Admission::admit_verification`]).
//! - (c) beyond that budget: `503` with a `Retry-After` taken from a calendar that spreads the
//!   retries at the rate the core verifies, never a `407`. The calendar is a queue kept by the
//!   devices themselves: a shed token's place (its slot) is remembered by the token's digest, and
//!   when the device comes back with it, it is verified ahead of tokens never seen, so a device
//!   is sent away once, not again and again by the ones arriving after it.
//!
//! The share of time given to (b) follows the core's queueing delay, CoDel-like: the delay is
//! how late the runtime's probe tick runs (it waits in the same run queue as the connections),
//! and only the smallest delay seen over an interval counts, so a burst that drains by itself
//! changes nothing while a standing queue shrinks the share until the queue is gone.

use crate::auth::Digest;
use crate::mix::splitmix64;
use std::collections::{HashMap, VecDeque};

/// The policy's constants (defaults suit a registrar core; tests shrink them).
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct AdmissionConfig {
    /// The runtime's probe period while there is work (µs).
    pub tick_us: u64,
    /// Queueing delay above which a standing queue is declared (CoDel's target).
    pub target_us: u64,
    /// The window over which the smallest delay is taken (CoDel's interval).
    pub interval_us: u64,
    /// Share of the core's time fresh verifications may take: start, least, most.
    pub share_start: f64,
    pub share_min: f64,
    pub share_max: f64,
    /// Verification time that may be saved up while idle, in ticks' worth (a burst into an
    /// idle core is verified at once, not shed).
    pub burst_ticks: u64,
    /// What one verification costs until the runtime has measured it (µs).
    pub cost_start_us: f64,
    /// New connections taken per tick: start, least, most.
    pub accepts_start: u32,
    pub accepts_min: u32,
    pub accepts_max: u32,
    /// Retry-After bounds for a shed verification (seconds).
    pub retry_min_s: u32,
    pub retry_max_s: u32,
    /// Places on the calendar remembered at most (each about 40 bytes while it waits).
    pub max_reservations: usize,
}

impl Default for AdmissionConfig {
    fn default() -> Self {
        AdmissionConfig {
            tick_us: 10_000,
            target_us: 100_000,
            interval_us: 200_000,
            share_start: 0.8,
            share_min: 0.4,
            share_max: 0.9,
            burst_ticks: 50,
            cost_start_us: 50.0,
            accepts_start: 512,
            accepts_min: 4,
            accepts_max: 2048,
            retry_min_s: 1,
            retry_max_s: 120,
            max_reservations: 1_000_000,
        }
    }
}

/// What admission did, for `/metrics`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct AdmissionStats {
    /// Fresh verifications let through.
    pub verify_admitted: u64,
    /// Fresh verifications answered 503 because the tick's budget was spent.
    pub verify_shed: u64,
    /// Of the admitted, those that came back to a place kept on the calendar.
    pub verify_returned: u64,
    /// Of the shed, those that came back to a place kept on the calendar and were sent away
    /// again (the core's debt was at its bound).
    pub verify_shed_again: u64,
    /// Connections taken.
    pub connections_admitted: u64,
    /// Times the accept loop was held to the next tick.
    pub connections_deferred: u64,
    /// Intervals that ended with a standing queue (the share was cut).
    pub standing_queues: u64,
}

/// One core's admission state.
#[derive(Clone, Debug)]
pub struct Admission {
    cfg: AdmissionConfig,
    /// False for [`Admission::unlimited`]: everything is admitted (a registrar nobody ticks).
    limited: bool,
    /// The last tick's time (µs); 0 before the first.
    now_us: u64,
    interval_end_us: u64,
    interval_min_us: u64,
    /// The last delay reported.
    delay_us: u64,
    share: f64,
    /// Verification time available now (µs); may go one verification below zero.
    credit_us: f64,
    cost_us: f64,
    /// Verifications asked for since the last tick (admitted or not): is there demand?
    asked: u64,
    /// Verifications admitted and shed in the current interval.
    interval_admitted: u64,
    interval_shed: u64,
    /// Verifications a second the core got through while it was shedding (0: not measured):
    /// what the core really does under this load, for the retry calendar.
    measured_rate: f64,
    accepts_per_tick: u32,
    accepts_left: u32,
    /// Connections asked for since the last tick beyond what was allowed.
    accept_waited: bool,
    /// The retry calendar: the moment the last shed request was told to come back (µs).
    next_slot_us: u64,
    /// Places kept on the calendar: token digest (first 8 octets) -> slot (µs), and the same
    /// in the order given for expiry (slots grow but for a saturated calendar's random ones,
    /// so the front is the oldest, or close enough: an entry may outlive its grace a little).
    reserved: HashMap<u64, u64>,
    reserved_order: VecDeque<(u64, u64)>,
    /// The Retry-After given to the last shed verification.
    last_retry_s: u32,
    rng: u64,
    stats: AdmissionStats,
}

impl Admission {
    /// Admits every verification and connection, counting them: the policy of a registrar
    /// driven without a clock (tests, benchmarks, a library user), which would otherwise
    /// never earn a budget.
    pub fn unlimited() -> Self {
        Admission {
            limited: false,
            ..Admission::new(AdmissionConfig::default(), 0)
        }
    }

    pub fn new(cfg: AdmissionConfig, seed: u64) -> Self {
        Admission {
            limited: true,
            now_us: 0,
            interval_end_us: 0,
            interval_min_us: u64::MAX,
            delay_us: 0,
            share: cfg.share_start,
            credit_us: cfg.share_start * (cfg.tick_us * cfg.burst_ticks) as f64,
            cost_us: cfg.cost_start_us,
            asked: 0,
            interval_admitted: 0,
            interval_shed: 0,
            measured_rate: 0.0,
            accepts_per_tick: cfg.accepts_start,
            accepts_left: cfg.accepts_start,
            accept_waited: false,
            next_slot_us: 0,
            reserved: HashMap::new(),
            reserved_order: VecDeque::new(),
            last_retry_s: 0,
            rng: seed,
            stats: AdmissionStats::default(),
            cfg,
        }
    }

    pub fn config(&self) -> &AdmissionConfig {
        &self.cfg
    }

    /// The runtime's probe ran at `now_us`, `delay_us` later than it asked to. Refills the
    /// budgets and, at the end of each interval, adjusts the shares to the smallest delay seen
    /// in it.
    pub fn on_tick(&mut self, now_us: u64, delay_us: u64) {
        let elapsed = if self.now_us == 0 {
            self.cfg.tick_us
        } else {
            now_us.saturating_sub(self.now_us)
        };
        self.now_us = now_us;
        self.delay_us = delay_us;
        // Time that passed is time the core could have verified in. An idle core saves it
        // up to the burst bound; a core with verifications waiting saves at most two ticks'
        // worth: a probe that ran late because the core was busy (or descheduled, on shared
        // cores) MUST NOT hand out its whole lateness as new credit, or the next ticks spend it
        // in one long burst, the probe runs later still, and the delay feeds itself.
        let depth = self.share * (self.cfg.tick_us * self.cfg.burst_ticks) as f64;
        let cap = if self.asked > 0 {
            self.share * (2 * self.cfg.tick_us) as f64
        } else {
            depth
        };
        if self.credit_us < cap {
            let earned = self.share * elapsed.min(self.cfg.tick_us * self.cfg.burst_ticks) as f64;
            self.credit_us = (self.credit_us + earned).min(cap);
        }
        self.interval_min_us = self.interval_min_us.min(delay_us);
        if self.interval_end_us == 0 {
            self.interval_end_us = now_us + self.cfg.interval_us;
        } else if now_us >= self.interval_end_us {
            self.end_interval();
            self.interval_end_us = now_us + self.cfg.interval_us;
            self.interval_min_us = u64::MAX;
        }
        self.accepts_left = self.accepts_per_tick;
        self.accept_waited = false;
        self.asked = 0;
        // Places whose device did not come back within a minute past the longest wait are
        // given up (the device went elsewhere, or gave up).
        let grace = (u64::from(self.cfg.retry_max_s) + 60) * 1_000_000;
        while let Some(&(slot, key)) = self.reserved_order.front() {
            if slot + grace > now_us {
                break;
            }
            self.reserved_order.pop_front();
            if self.reserved.get(&key) == Some(&slot) {
                self.reserved.remove(&key);
            }
        }
    }

    fn end_interval(&mut self) {
        let c = self.cfg;
        if self.interval_shed > 0 {
            // Demand exceeded the budget all interval long: what got through is the capacity.
            let sample = self.interval_admitted as f64 * 1e6 / c.interval_us as f64;
            self.measured_rate = if self.measured_rate == 0.0 {
                sample
            } else {
                self.measured_rate + (sample - self.measured_rate) * 0.5
            };
        }
        self.interval_admitted = 0;
        self.interval_shed = 0;
        if self.interval_min_us > c.target_us {
            // A standing queue: the work taken in is more than the core gets through. Fresh
            // verifications and new connections give way to what is already admitted.
            self.stats.standing_queues += 1;
            self.share = (self.share * 0.85).max(c.share_min);
            // The credit saved up is kept: it is bounded, and spending it on a storm that came
            // into an idle core is what it is for.
            self.accepts_per_tick = (self.accepts_per_tick * 3 / 4).max(c.accepts_min);
        } else {
            // No queue: give back room, gently (additive), as far as the bounds.
            self.share = (self.share + 0.05).min(c.share_max);
            let step = (self.accepts_per_tick / 4).max(1);
            self.accepts_per_tick = (self.accepts_per_tick + step).min(c.accepts_max);
        }
    }

    /// May the token with this digest, not in the cache, be verified now? Charges the measured
    /// cost of one verification against the tick's budget. A token that was shed before and
    /// comes back (its place was kept) goes ahead of new ones, as long as the core's debt stays
    /// within the queueing target. False means answer 503 with [`Admission::last_retry_after_s`].
    pub fn admit_verification(&mut self, token: &Digest) -> bool {
        self.asked += 1;
        let key = u64::from_le_bytes([
            token[0], token[1], token[2], token[3], token[4], token[5], token[6], token[7],
        ]);
        // Returning devices may put the core in debt by at most the queueing target's worth
        // of verification: a deeper debt is paid as a standing queue in front of every
        // connection on the core (a burst of debt was measured as 300 to 500 ms of delay).
        let debt = self.cfg.share_max * self.cfg.target_us as f64;
        // One lookup either way: a place is taken up when its device is let through.
        let (has_place, returned) = if self.credit_us > -debt {
            let r = self.reserved.remove(&key).is_some();
            (r, r)
        } else {
            (self.reserved.contains_key(&key), false)
        };
        if returned || self.credit_us > 0.0 || !self.limited {
            self.credit_us -= self.cost_us;
            self.stats.verify_admitted += 1;
            self.stats.verify_returned += u64::from(returned);
            self.interval_admitted += 1;
            return true;
        }
        self.stats.verify_shed += 1;
        self.stats.verify_shed_again += u64::from(has_place);
        self.interval_shed += 1;
        let (slot, wait) = self.calendar_place();
        self.rng = splitmix64(self.rng);
        let jitter = self.rng % 1_000_000;
        let c = self.cfg;
        self.last_retry_s =
            (((wait + jitter) / 1_000_000) as u32).clamp(c.retry_min_s, c.retry_max_s);
        if self.reserved.len() < c.max_reservations || has_place {
            // A place given again replaces the old one; the old entry in the order no longer
            // matches and is skipped at expiry.
            self.reserved.insert(key, slot);
            self.reserved_order.push_back((slot, key));
        }
        false
    }

    /// The runtime measured `n` verifications taking `elapsed_us` in all (with the little
    /// else done around them): the cost estimate follows (moving average).
    pub fn observe_cost(&mut self, elapsed_us: u64, n: u64) {
        if n == 0 {
            return;
        }
        let sample = elapsed_us as f64 / n as f64;
        // Bounded so that one descheduled read cannot close the budget for long.
        let sample = sample.clamp(1.0, 20_000.0);
        // A read's other work (cached answers, 503s) is charged to its verifications too, so a
        // sample is never below the true cost and often above it: follow lower samples fast
        // and higher ones slowly (a slower key type still shows within a few hundred reads).
        let gain = if sample < self.cost_us { 0.5 } else { 0.02 };
        self.cost_us += (sample - self.cost_us) * gain;
    }

    /// Verifications per second the core gives to fresh tokens now.
    pub fn verify_rate_per_s(&self) -> f64 {
        self.share * 1e6 / self.cost_us.max(1.0)
    }

    /// The pace of the retry calendar: the verifications a second the core got through while
    /// it was shedding (a moving average over intervals), or before it has shed, what its share
    /// and the measured cost allow. Paced above what the core does, returning devices would be
    /// sent away again; below it, the core would idle while devices wait.
    pub fn calendar_rate_per_s(&self) -> f64 {
        if self.measured_rate > 0.0 {
            self.measured_rate
        } else {
            self.verify_rate_per_s()
        }
    }

    /// The next place on the calendar: (its time, the wait from now), both µs. The calendar
    /// hands out the core's verification rate, so retries come back spread at what the core
    /// can take rather than in a wave; it saturates at the longest wait, beyond which retries
    /// spread over the last half of the window.
    fn calendar_place(&mut self) -> (u64, u64) {
        let c = self.cfg;
        let gap = 1e6 / self.calendar_rate_per_s().max(1.0);
        let now = self.now_us;
        let min_us = u64::from(c.retry_min_s) * 1_000_000;
        let max_us = u64::from(c.retry_max_s) * 1_000_000;
        let slot = self.next_slot_us.max(now + min_us);
        if slot - now < max_us {
            self.next_slot_us = slot + gap as u64;
            (slot, slot - now)
        } else {
            self.rng = splitmix64(self.rng);
            let wait = max_us / 2 + self.rng % (max_us / 2);
            (now + wait, wait)
        }
    }

    /// The Retry-After (seconds) given to the last verification shed, jittered within its
    /// second.
    pub fn last_retry_after_s(&self) -> u32 {
        self.last_retry_s
    }

    /// Places kept on the calendar now.
    pub fn reservations(&self) -> usize {
        self.reserved.len()
    }

    /// May the accept loop take one more connection in this tick? When false it waits for the
    /// next tick: the kernel's backlog holds the connection meanwhile.
    pub fn admit_connection(&mut self) -> bool {
        if self.accepts_left > 0 || !self.limited {
            self.accepts_left = self.accepts_left.saturating_sub(1);
            self.stats.connections_admitted += 1;
            true
        } else {
            if !self.accept_waited {
                self.accept_waited = true;
                self.stats.connections_deferred += 1;
            }
            false
        }
    }

    /// When the runtime should probe again (µs after the last tick): often while there is
    /// work to pace, rarely when the core is idle (each wake-up of an idle core costs).
    pub fn next_tick_in_us(&self) -> u64 {
        let busy = self.asked > 0
            || self.accept_waited
            || self.credit_us < self.share * (self.cfg.tick_us * self.cfg.burst_ticks) as f64
            || self.delay_us > self.cfg.target_us;
        if busy {
            self.cfg.tick_us
        } else {
            self.cfg.tick_us * 10
        }
    }

    /// The last queueing delay reported (µs).
    pub fn delay_us(&self) -> u64 {
        self.delay_us
    }

    /// The share of the core's time fresh verifications may take now.
    pub fn share(&self) -> f64 {
        self.share
    }

    pub fn stats(&self) -> AdmissionStats {
        self.stats
    }
}
