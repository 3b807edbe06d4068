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
//!   retries at the rate the core verifies ([`Admission::retry_after_s`]), never a `407`.
//!
//! The share of time given to (b) follows the core's queueing delay, CoDel-like: the delay is
//! how late the runtime's probe tick runs (it waits in the same run queue as the connections),
//! and only the smallest delay seen over an interval counts, so a burst that drains by itself
//! changes nothing while a standing queue shrinks the share until the queue is gone.

use crate::mix::splitmix64;

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
}

impl Default for AdmissionConfig {
    fn default() -> Self {
        AdmissionConfig {
            tick_us: 10_000,
            target_us: 50_000,
            interval_us: 200_000,
            share_start: 0.8,
            share_min: 0.4,
            share_max: 0.9,
            burst_ticks: 10,
            cost_start_us: 50.0,
            accepts_start: 64,
            accepts_min: 4,
            accepts_max: 512,
            retry_min_s: 1,
            retry_max_s: 120,
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
    rng: u64,
    stats: AdmissionStats,
}

impl Admission {
    pub fn new(cfg: AdmissionConfig, seed: u64) -> Self {
        Admission {
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
        // Time that passed is time the core could have verified in, up to the burst bound.
        let depth = self.share * (self.cfg.tick_us * self.cfg.burst_ticks) as f64;
        let earned = self.share * elapsed.min(self.cfg.tick_us * self.cfg.burst_ticks) as f64;
        self.credit_us = (self.credit_us + earned).min(depth);
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
            self.accepts_per_tick = (self.accepts_per_tick * 3 / 4).max(c.accepts_min);
            self.credit_us = self.credit_us.min(0.0);
        } else {
            // No queue: give back room, gently (additive), as far as the bounds.
            self.share = (self.share + 0.05).min(c.share_max);
            let step = (self.accepts_per_tick / 4).max(1);
            self.accepts_per_tick = (self.accepts_per_tick + step).min(c.accepts_max);
        }
    }

    /// May a token that is not in the cache be verified now? Charges the measured cost of one
    /// verification against the tick's budget; false means answer 503 with
    /// [`Admission::retry_after_s`].
    pub fn admit_verification(&mut self) -> bool {
        self.asked += 1;
        if self.credit_us > 0.0 {
            self.credit_us -= self.cost_us;
            self.stats.verify_admitted += 1;
            self.interval_admitted += 1;
            true
        } else {
            self.stats.verify_shed += 1;
            self.interval_shed += 1;
            false
        }
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

    /// Verifications per second the core gets through at its full share, or what it did get
    /// through the last time it shed, whichever is more: the pace of the retry calendar. A
    /// retry that comes back to a core still busy is shed again (cheaply, to a later slot); a
    /// calendar paced below the core's capacity would leave it idle while devices wait.
    pub fn calendar_rate_per_s(&self) -> f64 {
        let full = self.cfg.share_max * 1e6 / self.cost_us.max(1.0);
        full.max(self.measured_rate)
    }

    /// The Retry-After (seconds) for a fresh verification that was shed: a place on a
    /// calendar that hands out the core's verification rate, so retries come back spread at
    /// what the core can take rather than in a wave, jittered within the second.
    pub fn retry_after_s(&mut self) -> u32 {
        let c = self.cfg;
        let gap = 1e6 / self.calendar_rate_per_s().max(1.0);
        let now = self.now_us;
        let min_us = u64::from(c.retry_min_s) * 1_000_000;
        let max_us = u64::from(c.retry_max_s) * 1_000_000;
        let slot = self.next_slot_us.max(now + min_us);
        // The calendar saturates at the longest wait; beyond it, retries spread over the last
        // half of the window.
        let wait = if slot - now < max_us {
            self.next_slot_us = slot + gap as u64;
            slot - now
        } else {
            self.rng = splitmix64(self.rng);
            max_us / 2 + self.rng % (max_us / 2)
        };
        self.rng = splitmix64(self.rng);
        let jitter = self.rng % 1_000_000;
        let s = (wait + jitter) / 1_000_000;
        (s as u32).clamp(c.retry_min_s, c.retry_max_s)
    }

    /// May the accept loop take one more connection in this tick? When false it waits for the
    /// next tick: the kernel's backlog holds the connection meanwhile.
    pub fn admit_connection(&mut self) -> bool {
        if self.accepts_left > 0 {
            self.accepts_left -= 1;
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
