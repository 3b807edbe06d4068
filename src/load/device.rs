//! One simulated Jabber device, sans-IO: when it sends which REGISTER, and what each answer
//! means for the next one. Driven by `now` in microseconds (latencies of a fast registrar are
//! tens of microseconds); the engine owns sockets, tokens and the clock, and asks
//! [`Device::poll`] what the device wants.
//!
//! The flow is the seed's: a first REGISTER without credentials (when `challenge_first`), 407,
//! the same with `Proxy-Authorization: Bearer token="..."`, 200 OK; then a re-REGISTER after
//! `min(reregister, 0.9 x granted Expires)`, a fresh token once the held one has lived 75 % of
//! its lifetime (a token the registrar has never seen: the refresh churn), a fresh token and
//! an immediate retry after `407 invalid_token`, a wait of Retry-After (stretched by a random
//! 0 to `retry_jitter_pct` %) after a 403 or 503 that carries one (as Jabber does after the
//! port-mismatch 403), parking after a 403 without it,
//! and reconnection with a jittered exponential backoff when the connection is lost.
//!
//! Latency is measured from the intended send time, not from when the engine got round to
//! sending: a device due at `t` that goes out late still counts from `t`, so a stalled
//! registrar (or engine) shows in the tail instead of being hidden (coordinated omission).

/// The schedule a device follows (from the load profile).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Timing {
    /// Re-REGISTER period in ms; 0: at once after each 200 (the ceiling).
    pub reregister_ms: u64,
    /// Access-token lifetime in seconds; a new one is taken at 75 % of it.
    pub token_ttl_s: u64,
    /// The first REGISTER carries no token (and gets 407), as Jabber's does.
    pub challenge_first: bool,
    /// No final answer by then: a timeout (RFC 3261 Timer F, 32 s).
    pub timeout_ms: u64,
    /// First reconnect wait; doubles per failure up to `backoff_max_ms`, jittered.
    pub backoff_min_ms: u64,
    pub backoff_max_ms: u64,
    /// How late (µs) the engine may send a REGISTER by batching its sends into ticks without
    /// it counting as latency: a REGISTER sent within this of its intended time is measured
    /// from when it was sent; one sent later (the engine lagging) from its intended time plus
    /// this, so a stall still shows in the tail. 0: always from the intended time.
    pub send_slack_us: u64,
    /// A wait of Retry-After is stretched by a random 0 to this many percent, so that the
    /// devices a 503 turned away together do not all come back in the same instant (a
    /// fleet's clients are not synchronised). 0: exactly Retry-After.
    pub retry_jitter_pct: u64,
}

impl Default for Timing {
    /// Unified CM's values: 120 s re-registration, 60-minute tokens, Timer F.
    fn default() -> Self {
        Timing {
            reregister_ms: 120_000,
            token_ttl_s: 3600,
            challenge_first: true,
            timeout_ms: 32_000,
            backoff_min_ms: 1_000,
            backoff_max_ms: 60_000,
            send_slack_us: 0,
            retry_jitter_pct: 0,
        }
    }
}

/// One REGISTER to send.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Request {
    pub cseq: u32,
    /// Carry the held token (else no credentials).
    pub with_token: bool,
    /// When it should have gone out (µs): latency counts from here.
    pub intended_us: u64,
    /// Sent again because the last attempt failed (a 503 or 403 with Retry-After, another
    /// refusal, a timeout, a lost connection): not part of the profile's own schedule.
    pub retry: bool,
}

/// What the device wants from the engine now.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Want {
    /// Nothing before `at` (µs).
    Wait { at: u64 },
    /// A connection: report [`Device::connected`] or [`Device::disconnected`].
    Connect,
    /// A fresh token: report [`Device::token_minted`], then poll again.
    Token,
    /// Send this REGISTER, then report its answer with [`Device::answered`].
    Send(Request),
    /// The REGISTER in flight got no answer in time; it is over (the device waits, then
    /// tries again). `latency_us` is from its intended time.
    TimedOut { latency_us: u64 },
    /// Parked after a 403 without Retry-After: nothing more, ever.
    Parked,
}

/// What the engine read from a final response.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Answer {
    pub status: u16,
    pub retry_after_s: Option<u32>,
    /// The granted `Expires` of a 200.
    pub expires_s: Option<u32>,
    /// The challenge said `error="invalid_token"`.
    pub invalid_token: bool,
}

/// A finished transaction, for the engine's statistics.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Done {
    pub status: u16,
    /// From the intended send time to the answer.
    pub latency_us: u64,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum State {
    Disconnected,
    Ready,
    InFlight { intended_us: u64, sent_us: u64 },
    Parked,
}

/// One device's state.
#[derive(Clone, Debug)]
pub struct Device {
    timing: Timing,
    state: State,
    /// When the next REGISTER (or reconnect) is due.
    next_us: u64,
    cseq: u32,
    /// When the held token was minted; `None`: no token held.
    token_us: Option<u64>,
    /// The next REGISTER carries the token (after the first challenge, or from the start).
    use_token: bool,
    /// Consecutive connection losses, for the backoff.
    losses: u32,
    /// The last attempt failed: the next REGISTER is a retry (see [`Request::retry`]).
    retrying: bool,
    rng: u64,
}

impl Device {
    /// A device that starts (connects) at `start_us`; `seed` makes its jitter reproducible.
    pub fn new(timing: Timing, start_us: u64, seed: u64) -> Self {
        let us = |ms: u64| ms.saturating_mul(1000);
        Device {
            // Held in microseconds, like every time here.
            timing: Timing {
                reregister_ms: us(timing.reregister_ms),
                timeout_ms: us(timing.timeout_ms),
                backoff_min_ms: us(timing.backoff_min_ms),
                backoff_max_ms: us(timing.backoff_max_ms),
                ..timing
            },
            state: State::Disconnected,
            next_us: start_us,
            cseq: 0,
            token_us: None,
            use_token: !timing.challenge_first,
            losses: 0,
            retrying: false,
            rng: seed ^ crate::mix::GAMMA,
        }
    }

    /// Sets [`Timing::send_slack_us`]: the engine's batching tick.
    pub fn set_send_slack(&mut self, us: u64) {
        self.timing.send_slack_us = us;
    }

    /// The CSeq of the last REGISTER sent (a stable Call-ID, growing CSeq).
    pub fn cseq(&self) -> u32 {
        self.cseq
    }

    pub fn is_parked(&self) -> bool {
        self.state == State::Parked
    }

    /// Whether a REGISTER is waiting for its answer.
    pub fn in_flight(&self) -> bool {
        matches!(self.state, State::InFlight { .. })
    }

    fn token_fresh(&self, now_us: u64) -> bool {
        // Taken anew at 75 % of the lifetime.
        let refresh_after = self.timing.token_ttl_s * 750_000;
        self.token_us
            .is_some_and(|t| now_us.saturating_sub(t) < refresh_after)
    }

    /// What the device wants at `now_us`.
    pub fn poll(&mut self, now_us: u64) -> Want {
        match self.state {
            State::Parked => Want::Parked,
            State::Disconnected if now_us < self.next_us => Want::Wait { at: self.next_us },
            State::Disconnected => Want::Connect,
            State::InFlight {
                intended_us,
                sent_us,
            } => {
                let deadline = sent_us + self.timing.timeout_ms;
                if now_us < deadline {
                    return Want::Wait { at: deadline };
                }
                self.state = State::Ready;
                self.next_us = now_us + self.backoff();
                self.retrying = true;
                Want::TimedOut {
                    latency_us: now_us.saturating_sub(self.reference(intended_us, sent_us)),
                }
            }
            State::Ready if now_us < self.next_us => Want::Wait { at: self.next_us },
            State::Ready => {
                if self.use_token && !self.token_fresh(now_us) {
                    return Want::Token;
                }
                self.cseq += 1;
                let intended_us = self.next_us;
                self.state = State::InFlight {
                    intended_us,
                    sent_us: now_us,
                };
                Want::Send(Request {
                    cseq: self.cseq,
                    with_token: self.use_token,
                    intended_us,
                    retry: self.retrying,
                })
            }
        }
    }

    /// When the device is next due on its own (a reconnect, a re-REGISTER, a timeout check).
    pub fn next_due(&self) -> u64 {
        match self.state {
            State::InFlight { sent_us, .. } => sent_us + self.timing.timeout_ms,
            State::Parked => u64::MAX,
            _ => self.next_us,
        }
    }

    /// Open loop: an offered turn with this intended time goes to this (idle) device; it sends
    /// now whatever its own schedule says (a token first when it needs one).
    pub fn poll_turn(&mut self, now_us: u64, intended_us: u64) -> Want {
        if self.state == State::Ready {
            self.next_us = intended_us.min(now_us);
        }
        let want = self.poll(now_us);
        if let Want::Send(mut r) = want {
            r.intended_us = intended_us;
            if let State::InFlight {
                intended_us: ref mut i,
                ..
            } = self.state
            {
                *i = intended_us;
            }
            return Want::Send(r);
        }
        want
    }

    /// Open loop, between turns: the device connects, times out and waits on its own, but an
    /// idle one sends only when given a turn.
    pub fn poll_between_turns(&mut self, now_us: u64) -> Want {
        match self.state {
            State::Ready => Want::Wait { at: u64::MAX },
            _ => self.poll(now_us),
        }
    }

    /// The last REGISTER of a run (`Expires: 0`): sent now, outside the schedule; its answer
    /// is taken like any other. Returns its CSeq.
    pub fn begin_final(&mut self, now_us: u64) -> u32 {
        self.cseq += 1;
        self.state = State::InFlight {
            intended_us: now_us,
            sent_us: now_us,
        };
        self.cseq
    }

    /// When the held token was minted (µs); `None` when the device holds none it would use.
    pub fn token_minted_at(&self) -> Option<u64> {
        self.token_us
    }

    /// A fresh token is held from `now_us` on.
    pub fn token_minted(&mut self, now_us: u64) {
        self.token_us = Some(now_us);
    }

    /// The connection is up: the next REGISTER goes now, or when it was due if later.
    pub fn connected(&mut self, now_us: u64) {
        if self.state == State::Disconnected {
            self.state = State::Ready;
            self.next_us = self.next_us.max(now_us);
        }
    }

    /// The connection failed or was lost. A REGISTER in flight is over (returned, with the
    /// status 0); the device reconnects after a jittered, growing backoff and registers again
    /// with the token it holds.
    pub fn disconnected(&mut self, now_us: u64) -> Option<Done> {
        let lost = match self.state {
            State::InFlight {
                intended_us,
                sent_us,
            } => Some(Done {
                status: 0,
                latency_us: now_us.saturating_sub(self.reference(intended_us, sent_us)),
            }),
            _ => None,
        };
        if self.state != State::Parked {
            self.state = State::Disconnected;
            self.retrying = true;
            self.losses = self.losses.saturating_add(1);
            self.next_us = now_us + self.backoff();
        }
        lost
    }

    /// The final answer to the REGISTER in flight arrived at `now_us`.
    pub fn answered(&mut self, now_us: u64, a: &Answer) -> Option<Done> {
        let State::InFlight {
            intended_us,
            sent_us,
        } = self.state
        else {
            return None;
        };
        let done = Done {
            status: a.status,
            latency_us: now_us.saturating_sub(self.reference(intended_us, sent_us)),
        };
        self.state = State::Ready;
        match (a.status, a.retry_after_s) {
            (401 | 407, _) => {
                // Challenged: send again at once, with a token (a fresh one if it was refused).
                if a.invalid_token || self.use_token {
                    self.token_us = None;
                }
                self.use_token = true;
                self.next_us = now_us;
            }
            (200..=299, _) => {
                self.losses = 0;
                self.retrying = false;
                let granted_us = a.expires_s.map_or(u64::MAX, |e| u64::from(e) * 900_000);
                self.next_us = now_us + self.timing.reregister_ms.min(granted_us);
            }
            (403 | 503, Some(s)) => {
                let wait = u64::from(s) * 1_000_000;
                let spread = wait * self.timing.retry_jitter_pct / 100;
                let jitter = if spread > 0 {
                    self.next_random() % (spread + 1)
                } else {
                    0
                };
                self.next_us = now_us + wait + jitter;
                self.retrying = true;
            }
            (403, None) => self.state = State::Parked,
            // Anything else (423, 500, a 503 without Retry-After, ...): try again on the
            // normal schedule, never faster than once a second.
            _ => {
                self.next_us = now_us + self.timing.reregister_ms.max(1_000_000);
                self.retrying = true;
            }
        }
        Some(done)
    }

    /// Where a transaction's latency counts from: its intended time, less the engine's
    /// batching slack (see [`Timing::send_slack_us`]), never after it was really sent.
    fn reference(&self, intended_us: u64, sent_us: u64) -> u64 {
        sent_us.min(intended_us.saturating_add(self.timing.send_slack_us))
    }

    /// The reconnect (or retry) wait: min * 2^(losses-1), capped, uniformly jittered over its
    /// upper half, so devices that dropped together do not all come back together.
    fn backoff(&mut self) -> u64 {
        let exp = self.losses.saturating_sub(1).min(20);
        let full = self
            .timing
            .backoff_min_ms
            .saturating_mul(1 << exp)
            .min(self.timing.backoff_max_ms)
            .max(1);
        let half = full / 2;
        half + self.next_random() % (full - half + 1)
    }

    fn next_random(&mut self) -> u64 {
        crate::mix::next(&mut self.rng)
    }
}
