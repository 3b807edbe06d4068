//! One core's share of a load run, sans-IO: its devices, the connections they share, the
//! REGISTERs they send and the answers they get, and the statistics. The runtime (`rt::load`)
//! opens sockets when asked, moves bytes in and out of [`Engine`] and calls
//! [`Engine::run_due`] when the next device is due; time comes in as `now` (µs).

use super::device::{Answer, Device, Want};
use super::jabber::{cisco_body, Register};
use super::outbox::Outbox;
use super::profile::{Body, Profile};
use super::schedule::{branch, call_id_user, start_us, Identity, OpenLoop, RampOrder, Turn};
use super::tokens::{device_claims, Minted, Signature, TokenBank};
use super::wheel::DueWheel;
use crate::auth::Signer;
use crate::sip::{self, Frame, Framer, HeaderName, StartLine, EMPTY_HEADER};
use hdrhistogram::Histogram;
use std::cmp::Reverse;
use std::collections::{BTreeMap, BinaryHeap, VecDeque};
use std::io::{Read, Write};
use std::sync::Arc;

/// Longest latency recorded exactly (µs); longer ones are clamped to it.
pub const MAX_LATENCY_US: u64 = 120_000_000;

/// How the engine talks to the registrar.
#[derive(Clone, Debug)]
pub enum Transport {
    /// TLS (or mutual TLS when the config carries a client certificate).
    Tls {
        config: Arc<rustls::ClientConfig>,
        server_name: rustls::pki_types::ServerName<'static>,
    },
    /// Plaintext TCP (lab listeners).
    Tcp,
    /// UDP: one datagram per REGISTER, retransmitted on RFC 3261 timer E (T1 = 500 ms,
    /// doubling to T2 = 4 s) until a final answer or timer F.
    Udp,
}

impl Transport {
    /// Whether messages go as datagrams (no stream framing, retransmissions).
    pub fn is_datagram(&self) -> bool {
        matches!(self, Transport::Udp)
    }
}

/// Why a connection was lost (or never made): `connections_lost` in the results.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum LinkLoss {
    /// The registrar closed it (FIN, or a TLS close_notify).
    PeerClosed,
    /// A TCP reset (or a broken pipe).
    Reset,
    /// A TLS failure: handshake refused, bad record, alert.
    Tls,
    /// The connect itself failed (refused, unreachable, no socket).
    ConnectFailed,
    /// The kernel gave up on it (`ETIMEDOUT`).
    Timeout,
    /// The registrar sent bytes that cannot be framed as SIP.
    Protocol,
    /// Anything else the socket reported.
    Other,
}

impl LinkLoss {
    /// Every cause, in the order of [`Stats::connections_lost`].
    pub const ALL: [LinkLoss; 7] = [
        LinkLoss::PeerClosed,
        LinkLoss::Reset,
        LinkLoss::Tls,
        LinkLoss::ConnectFailed,
        LinkLoss::Timeout,
        LinkLoss::Protocol,
        LinkLoss::Other,
    ];

    /// The key in summary.json.
    pub fn as_str(self) -> &'static str {
        match self {
            LinkLoss::PeerClosed => "peer_closed",
            LinkLoss::Reset => "reset",
            LinkLoss::Tls => "tls",
            LinkLoss::ConnectFailed => "connect_failed",
            LinkLoss::Timeout => "timeout",
            LinkLoss::Protocol => "protocol",
            LinkLoss::Other => "other",
        }
    }

    fn index(self) -> usize {
        self as usize
    }
}

/// A connection that must be closed, and why.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LinkError {
    pub loss: LinkLoss,
    pub message: String,
}

impl LinkError {
    pub fn new(loss: LinkLoss, message: impl Into<String>) -> Self {
        LinkError {
            loss,
            message: message.into(),
        }
    }
}

impl std::fmt::Display for LinkError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} ({})", self.message, self.loss.as_str())
    }
}

impl std::error::Error for LinkError {}

/// RFC 3261 T1 and T2 (µs).
const T1_US: u64 = 500_000;
/// TLS records sealed ahead of a stream socket (bytes): a little more than a socket takes in
/// one write, so a write never waits for sealing while a backlog stays plaintext.
const WIRE_HIGH: usize = 256 * 1024;
/// Plaintext handed to TLS at a time while sealing.
const SEAL_CHUNK: usize = 64 * 1024;
const T2_US: u64 = 4_000_000;
/// The due wheel's slots: 2 ms each (half the runtime's tick), 131,072 of them, so its horizon
/// (262 s) holds every re-registration and nearly every `Retry-After` (3 MB of slot headers).
const DUE_SLOT_US: u64 = 2_000;
const DUE_SLOTS: usize = 1 << 17;

/// Counters and latencies of one core (merged across cores for the results).
#[derive(Clone, Debug)]
pub struct Stats {
    /// Every completed transaction (a 407 is one), µs from its intended send time.
    pub latency: Histogram<u64>,
    /// Final responses by status.
    pub responses: BTreeMap<u16, u64>,
    /// REGISTERs sent.
    pub sent: u64,
    /// Transactions lost with their connection, and connections that failed.
    pub errors: u64,
    pub timeouts: u64,
    pub tls_handshakes: u64,
    /// Tokens signed during the run (renewals ahead of need, and any signed in the send path).
    pub tokens_minted: u64,
    /// Of those, signed in the send path because none was ready (no bank, a refused token,
    /// a renewal not minted ahead in time): each one delays the REGISTERs behind it.
    pub inline_mints: u64,
    /// Thread CPU spent minting tokens during the run (ns, measured around each signature).
    pub mint_ns: u64,
    /// Open-loop turns never sent: still waiting for an idle device when the run ended.
    pub missed_turns: u64,
    /// Open-loop turns that found no idle device when due, waited for the first one to free
    /// and went late (their latency counts from their intended time, the wait included).
    pub late_sends: u64,
    /// Connections lost or never made, by cause (indexed as [`LinkLoss::ALL`]).
    pub connections_lost: [u64; LinkLoss::ALL.len()],
    /// Devices of this engine.
    pub devices: u64,
    /// Devices holding a binding now (a 200 to a REGISTER with expires > 0, its connection
    /// not lost since).
    pub registered: u64,
    /// Spans (µs from the run's start, end exclusive; `u64::MAX`: still) during which every
    /// device held a binding.
    pub all_registered: Vec<(u64, u64)>,
    /// UDP retransmissions (timer E).
    pub retransmissions: u64,
    /// Per second of the run: REGISTERs sent, answers, and their latencies.
    pub timeline: Vec<Second>,
    /// The largest delay between a device being due and the engine getting to it (ms).
    pub lag_ms_max: u64,
}

/// One second of the run.
#[derive(Clone, Debug)]
pub struct Second {
    pub offered: u64,
    pub completed: u64,
    pub latency: Histogram<u64>,
    /// 503 answers (the registrar shedding load), also in `completed`.
    pub rejected: u64,
    /// Of `offered`, REGISTERs sent again after a failed attempt (503, timeout, lost
    /// connection): the rest is the profile's own schedule.
    pub retries: u64,
    /// REGISTERs lost with their connection, connections that failed, and timeouts.
    pub failures: u64,
    /// Change in devices holding a binding over the second.
    pub registered_delta: i64,
    /// The largest delay between something falling due and the engine getting to it (ms).
    pub lag_ms: u64,
}

impl Default for Second {
    fn default() -> Self {
        Second::new()
    }
}

impl Second {
    /// An empty second.
    pub fn new() -> Self {
        Second {
            offered: 0,
            completed: 0,
            latency: histogram(),
            rejected: 0,
            retries: 0,
            failures: 0,
            registered_delta: 0,
            lag_ms: 0,
        }
    }
}

fn histogram() -> Histogram<u64> {
    Histogram::new_with_bounds(1, MAX_LATENCY_US, 3).expect("valid histogram bounds")
}

impl Default for Stats {
    fn default() -> Self {
        Stats {
            latency: histogram(),
            responses: BTreeMap::new(),
            sent: 0,
            errors: 0,
            timeouts: 0,
            tls_handshakes: 0,
            tokens_minted: 0,
            inline_mints: 0,
            mint_ns: 0,
            missed_turns: 0,
            late_sends: 0,
            connections_lost: [0; LinkLoss::ALL.len()],
            devices: 0,
            registered: 0,
            all_registered: Vec::new(),
            retransmissions: 0,
            timeline: Vec::new(),
            lag_ms_max: 0,
        }
    }
}

impl Stats {
    fn second(&mut self, run_start_us: u64, now_us: u64) -> &mut Second {
        let i = (now_us.saturating_sub(run_start_us) / 1_000_000) as usize;
        while self.timeline.len() <= i {
            self.timeline.push(Second::new());
        }
        &mut self.timeline[i]
    }

    /// A transport failure or timeout at `now_us`.
    fn failed(&mut self, run_start_us: u64, now_us: u64) {
        self.second(run_start_us, now_us).failures += 1;
    }

    /// A device gained (`true`) or lost its binding at `now_us`.
    fn bound(&mut self, run_start_us: u64, now_us: u64, gained: bool) {
        let was_full = self.devices > 0 && self.registered == self.devices;
        if gained {
            self.registered += 1;
        } else {
            self.registered = self.registered.saturating_sub(1);
        }
        self.second(run_start_us, now_us).registered_delta += if gained { 1 } else { -1 };
        let t = now_us.saturating_sub(run_start_us);
        let full = self.registered == self.devices;
        if full && !was_full {
            self.all_registered.push((t, u64::MAX));
        } else if was_full && !full {
            if let Some(last) = self.all_registered.last_mut() {
                last.1 = t;
            }
        }
    }

    /// Devices holding a binding at the end of each second of the timeline.
    pub fn registered_by_second(&self) -> Vec<u64> {
        let mut n = 0i64;
        self.timeline
            .iter()
            .map(|s| {
                n += s.registered_delta;
                n.max(0) as u64
            })
            .collect()
    }

    /// The first instant (µs from the run's start) at which every device held a binding.
    pub fn all_registered_at_us(&self) -> Option<u64> {
        self.all_registered.first().map(|s| s.0)
    }

    fn completed(&mut self, run_start_us: u64, now_us: u64, status: u16, latency_us: u64) {
        let us = latency_us.clamp(1, MAX_LATENCY_US);
        self.latency.saturating_record(us);
        *self.responses.entry(status).or_default() += 1;
        let s = self.second(run_start_us, now_us);
        s.completed += 1;
        if status == 503 {
            s.rejected += 1;
        }
        s.latency.saturating_record(us);
    }

    /// Adds another core's statistics.
    pub fn merge(&mut self, o: &Stats) {
        // Every device held a binding when every engine's did: the spans intersect (an engine
        // without devices, as the empty accumulator, takes the other's spans).
        if self.devices == 0 {
            self.all_registered = o.all_registered.clone();
        } else if o.devices > 0 {
            let mut both = Vec::new();
            for &(a0, a1) in &self.all_registered {
                for &(b0, b1) in &o.all_registered {
                    let (from, to) = (a0.max(b0), a1.min(b1));
                    if from < to {
                        both.push((from, to));
                    }
                }
            }
            both.sort_unstable();
            self.all_registered = both;
        }
        self.devices += o.devices;
        self.registered += o.registered;
        self.inline_mints += o.inline_mints;
        self.late_sends += o.late_sends;
        for (a, b) in self.connections_lost.iter_mut().zip(o.connections_lost) {
            *a += b;
        }
        let _ = self.latency.add(&o.latency);
        for (k, v) in &o.responses {
            *self.responses.entry(*k).or_default() += v;
        }
        self.sent += o.sent;
        self.errors += o.errors;
        self.timeouts += o.timeouts;
        self.tls_handshakes += o.tls_handshakes;
        self.tokens_minted += o.tokens_minted;
        self.mint_ns += o.mint_ns;
        self.missed_turns += o.missed_turns;
        self.retransmissions += o.retransmissions;
        self.lag_ms_max = self.lag_ms_max.max(o.lag_ms_max);
        for (i, s) in o.timeline.iter().enumerate() {
            if self.timeline.len() <= i {
                self.timeline.push(Second::new());
            }
            let t = &mut self.timeline[i];
            t.offered += s.offered;
            t.completed += s.completed;
            t.rejected += s.rejected;
            t.retries += s.retries;
            t.failures += s.failures;
            t.registered_delta += s.registered_delta;
            t.lag_ms = t.lag_ms.max(s.lag_ms);
            let _ = t.latency.add(&s.latency);
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum LinkState {
    /// Not connected, nobody asked.
    Idle,
    /// A device asked; the runtime has not picked it up yet.
    Wanted,
    /// The runtime is connecting.
    Connecting,
    Up,
}

/// One connection the devices share.
struct Link {
    state: LinkState,
    tls: Option<Box<rustls::ClientConnection>>,
    handshaking: bool,
    framer: Framer,
    /// Plaintext received, not yet framed.
    inbuf: Vec<u8>,
    /// REGISTERs written, not yet handed to TLS or the socket.
    plain: Outbox,
    /// Bytes for the socket: at most about [`WIRE_HIGH`] more than one write's worth is
    /// sealed ahead of the socket, the rest waits as plaintext (see [`Engine::seal`]).
    wire: Outbox,
    /// Datagrams for the socket (UDP), in order.
    datagrams: VecDeque<Vec<u8>>,
    /// The devices on this connection (indices into `devices`).
    devices: Vec<usize>,
    /// The Via/Contact address (the socket's local address once connected).
    local: String,
    /// Already listed in `Engine::ready`.
    flagged: bool,
}

struct Dev {
    device: Device,
    link: usize,
    /// The token the device holds.
    token: Option<Minted>,
    /// The global device number (for the branch, and its token in the bank).
    number: u64,
    /// The device has taken its token from the bank (a second one must be signed).
    bank_taken: bool,
    /// It holds a binding (see [`Stats::registered`]).
    bound: bool,
    /// When this device is queued in `due` (u64::MAX: not queued).
    queued_at: u64,
    /// UDP: the REGISTER in flight, kept for retransmissions.
    last: Option<Vec<u8>>,
    /// A token minted ahead of need, taken when the device asks for a fresh one.
    next_token: Option<Minted>,
}

/// Whether device `d` can take an open-loop turn now.
fn idle(d: &Dev, links: &[Link]) -> bool {
    links[d.link].state == LinkState::Up && !d.device.in_flight() && !d.device.is_parked()
}

/// One core's engine.
pub struct Engine {
    profile: Profile,
    transport: Transport,
    signer: Signer,
    /// The first token of every device, signed before the run (shared by the cores).
    bank: Option<Arc<TokenBank>>,
    /// A token's text, rebuilt for the REGISTER being written.
    token_text: String,
    run_start_us: u64,
    /// This engine's open-loop share of the rate (REGISTER/s).
    rate_per_s: f64,
    send_slack_us: u64,
    devices: Vec<Dev>,
    links: Vec<Link>,
    /// Devices by when they fall due (superseded entries are skipped: see `queued_at`).
    due: DueWheel,
    /// `run_due`'s batch of entries taken from `due` (kept for its allocation).
    due_batch: Vec<(u64, u32)>,
    /// UDP retransmissions: (when, device, CSeq, interval).
    retransmit: BinaryHeap<Reverse<(u64, usize, u32, u64)>>,
    open_loop: Option<OpenLoop>,
    /// Open-loop turns that fell due with no idle device, oldest first (their intended
    /// times): each goes to the first device that frees.
    waiting: VecDeque<u64>,
    /// A device may have become idle since the last look (saves a scan of every device per
    /// tick while all are busy).
    idle_hint: bool,
    /// `unregister_all` ran: a 200 now removes a binding.
    unregistering: bool,
    /// Where `mint_ahead` goes on from.
    mint_cursor: usize,
    /// When `mint_ahead` next has anything to look at.
    next_mint_scan: u64,
    /// Devices the current `mint_ahead` pass has still to look at (0: no pass under way).
    mint_pass_left: usize,
    /// The earliest renewal the current pass has seen come due later.
    mint_pass_earliest: u64,
    /// When the current pass started (µs).
    mint_pass_started: u64,
    /// The run is over (after `unregister_all`): answers start nothing new.
    finished: bool,
    /// Links with bytes for the socket, for the runtime.
    ready: Vec<usize>,
    /// Links to connect, for the runtime.
    connect: Vec<usize>,
    body: Vec<u8>,
    stats: Stats,
}

impl std::fmt::Debug for Engine {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Engine")
            .field("devices", &self.devices.len())
            .field("links", &self.links.len())
            .finish()
    }
}

/// What a response said, read off the wire.
fn read_answer(msg: &sip::Message<'_, '_>) -> Option<(u16, Answer)> {
    let StartLine::Response { code, .. } = msg.start else {
        return None;
    };
    let retry_after_s = msg.header(HeaderName::RetryAfter).and_then(|v| {
        let digits: &[u8] = &v[..v
            .iter()
            .position(|b| !b.is_ascii_digit())
            .unwrap_or(v.len())];
        std::str::from_utf8(digits).ok()?.parse().ok()
    });
    let challenge = msg
        .header(HeaderName::ProxyAuthenticate)
        .or_else(|| msg.header(HeaderName::WwwAuthenticate));
    let invalid_token =
        challenge.is_some_and(|c| memchr::memmem::find(c, b"invalid_token").is_some());
    Some((
        code,
        Answer {
            status: code,
            retry_after_s,
            expires_s: msg.expires().ok().flatten(),
            invalid_token,
        },
    ))
}

impl Engine {
    /// The devices numbered `first..first + count` of the profile (this core's share), on
    /// `links` connections of their own, starting at `run_start_us`.
    pub fn new(
        profile: &Profile,
        transport: Transport,
        signer: Signer,
        first: u64,
        count: u64,
        links: u64,
        run_start_us: u64,
    ) -> Engine {
        let links_n = links.clamp(1, count.max(1)) as usize;
        let per_link = (count as usize).div_ceil(links_n).max(1);
        let mut engine = Engine {
            profile: profile.clone(),
            transport,
            signer,
            bank: None,
            token_text: String::with_capacity(1024),
            run_start_us,
            rate_per_s: 0.0,
            send_slack_us: 0,
            devices: Vec::with_capacity(count as usize),
            links: (0..links_n)
                .map(|_| Link {
                    state: LinkState::Idle,
                    tls: None,
                    handshaking: false,
                    framer: Framer::new(sip::Limits::default()),
                    inbuf: Vec::new(),
                    plain: Outbox::default(),
                    wire: Outbox::default(),
                    datagrams: VecDeque::new(),
                    devices: Vec::new(),
                    local: "127.0.0.1:5062".to_string(),
                    flagged: false,
                })
                .collect(),
            due: DueWheel::new(DUE_SLOT_US, DUE_SLOTS, 0),
            due_batch: Vec::new(),
            retransmit: BinaryHeap::new(),
            mint_cursor: 0,
            next_mint_scan: 0,
            mint_pass_left: 0,
            mint_pass_earliest: u64::MAX,
            mint_pass_started: 0,
            finished: false,
            open_loop: None,
            waiting: VecDeque::new(),
            idle_hint: true,
            unregistering: false,
            ready: Vec::new(),
            connect: Vec::new(),
            body: match profile.body {
                Body::Cisco => cisco_body(),
                Body::None => Vec::new(),
            },
            stats: Stats {
                devices: count,
                ..Stats::default()
            },
        };
        let timing = profile.timing();
        for k in 0..count {
            let number = first + k;
            let i = k as usize;
            let link = i / per_link;
            engine.links[link].devices.push(i);
            engine.devices.push(Dev {
                device: Device::new(timing, run_start_us, 0),
                link,
                token: None,
                number,
                bank_taken: false,
                bound: false,
                queued_at: u64::MAX,
                last: None,
                next_token: None,
            });
        }
        engine.start(run_start_us);
        engine
    }

    /// (Re)places the schedule at `run_start_us`: each device starts at its place in the
    /// ramp from there. The runtime builds its engines first (a million identities take a
    /// while) and fixes the start once every core is ready, so building is not lag.
    pub fn start(&mut self, run_start_us: u64) {
        self.run_start_us = run_start_us;
        let timing = self.profile.timing();
        self.due.clear(run_start_us);
        let order = RampOrder::new(self.profile.devices);
        for i in 0..self.devices.len() {
            let d = &mut self.devices[i];
            let number = d.number;
            let start = start_us(
                run_start_us,
                self.profile.ramp_s,
                self.profile.devices,
                order.place(number),
            );
            d.device = Device::new(
                timing,
                start,
                self.profile.seed ^ number.wrapping_mul(0x9e37),
            );
            d.device.set_send_slack(self.send_slack_us);
            d.queued_at = u64::MAX;
            self.queue(i, start);
        }
        self.set_rate(self.rate_per_s);
    }

    /// Sets this core's open-loop rate (its share of the profile's `rate`).
    pub fn set_rate(&mut self, rate_per_s: f64) {
        self.rate_per_s = rate_per_s;
        if self.profile.rate > 0.0 {
            self.open_loop = Some(OpenLoop::new(self.run_start_us, rate_per_s));
        }
    }

    /// The runtime sends in ticks of up to `us`: lateness within it is not latency (see
    /// [`crate::load::device::Timing::send_slack_us`]).
    pub fn set_send_slack(&mut self, us: u64) {
        self.send_slack_us = us;
        for d in &mut self.devices {
            d.device.set_send_slack(us);
        }
    }

    /// The first tokens, signed before the run: a device takes its own from `bank` instead
    /// of signing one when it first needs one.
    pub fn set_bank(&mut self, bank: Arc<TokenBank>) {
        self.bank = Some(bank);
    }

    pub fn stats(&self) -> &Stats {
        &self.stats
    }

    /// Connections this engine holds.
    pub fn links(&self) -> usize {
        self.links.len()
    }

    fn queue(&mut self, i: usize, at: u64) {
        let d = &mut self.devices[i];
        if at < d.queued_at {
            d.queued_at = at;
            self.due.push(at, i as u32);
        }
    }

    /// Links the runtime should connect (each once, until it reports up or down).
    pub fn take_connects(&mut self) -> Vec<usize> {
        std::mem::take(&mut self.connect)
    }

    /// Links with bytes for their socket.
    pub fn take_ready(&mut self) -> Vec<usize> {
        let ready = std::mem::take(&mut self.ready);
        for &l in &ready {
            self.links[l].flagged = false;
        }
        ready
    }

    fn flag(&mut self, l: usize) {
        if !self.links[l].flagged {
            self.links[l].flagged = true;
            self.ready.push(l);
        }
    }

    /// Polls every device that is due at `now_us` (and, in open loop, hands out the turns).
    pub fn run_due(&mut self, now_us: u64) {
        while let Some(&Reverse((at, i, cseq, interval))) = self.retransmit.peek() {
            if at > now_us {
                break;
            }
            self.retransmit.pop();
            let d = &self.devices[i];
            if !d.device.in_flight() || d.device.cseq() != cseq {
                continue; // answered, or timed out: no more retransmissions
            }
            if let Some(bytes) = d.last.clone() {
                let l = d.link;
                if self.links[l].state == LinkState::Up {
                    self.links[l].datagrams.push_back(bytes);
                    self.stats.retransmissions += 1;
                    self.flag(l);
                }
                let next = (interval * 2).min(T2_US);
                self.retransmit
                    .push(Reverse((now_us + next, i, cseq, next)));
            }
        }
        let mut batch = std::mem::take(&mut self.due_batch);
        loop {
            self.due.take_due(now_us, &mut batch);
            if batch.is_empty() {
                break;
            }
            for &(at, i) in &batch {
                let i = i as usize;
                if self.devices[i].queued_at != at {
                    continue; // superseded by an earlier entry
                }
                self.devices[i].queued_at = u64::MAX;
                self.lagged(now_us, at);
                self.poll_device(i, now_us, None);
            }
            batch.clear();
        }
        self.due_batch = batch;
        if let Some(mut ol) = self.open_loop.take() {
            self.open_loop_turns(&mut ol, now_us);
            self.open_loop = Some(ol);
        }
    }

    /// Something due at `at` is handled at `now_us`: the engine's lag.
    fn lagged(&mut self, now_us: u64, at: u64) {
        let ms = now_us.saturating_sub(at) / 1000;
        self.stats.lag_ms_max = self.stats.lag_ms_max.max(ms);
        let s = self.stats.second(self.run_start_us, now_us);
        s.lag_ms = s.lag_ms.max(ms);
    }

    /// Open loop: the turns due at `now_us`. A turn that finds no idle device is not lost: it
    /// waits, in order, for the first device to free and is sent then, its latency counted
    /// from its intended time (as wrk2 does), so a stalled registrar shows in the tail
    /// instead of thinning the offered load (coordinated omission).
    fn open_loop_turns(&mut self, ol: &mut OpenLoop, now_us: u64) {
        let n = self.devices.len();
        loop {
            if !self.waiting.is_empty() {
                // Turns falling due now queue behind those already waiting.
                while let Some(at) = ol.take_due(now_us) {
                    self.waiting.push_back(at);
                }
                if !self.idle_hint {
                    return;
                }
                let picked = {
                    let (devices, links) = (&self.devices, &self.links);
                    ol.pick(n, |i| idle(&devices[i], links))
                };
                let Some(i) = picked else {
                    self.idle_hint = false;
                    return;
                };
                let intended_us = self.waiting.pop_front().unwrap_or(now_us);
                self.stats.late_sends += 1;
                self.poll_device(i, now_us, Some(intended_us));
                continue;
            }
            let turn = {
                let (devices, links) = (&self.devices, &self.links);
                ol.next(now_us, n, |i| idle(&devices[i], links))
            };
            match turn {
                None => return,
                Some(Turn::Send { index, intended_us }) => {
                    self.lagged(now_us, intended_us);
                    self.poll_device(index, now_us, Some(intended_us));
                }
                Some(Turn::Missed { intended_us }) => {
                    self.waiting.push_back(intended_us);
                    self.idle_hint = false;
                }
            }
        }
    }

    /// Asks device `i` what it wants and does it. `turn`: an open-loop turn's intended time.
    fn poll_device(&mut self, i: usize, now_us: u64, turn: Option<u64>) {
        for _ in 0..4 {
            let want = match turn {
                Some(at) => self.devices[i].device.poll_turn(now_us, at),
                None if self.open_loop.is_some() => {
                    // Open loop: devices send on turns only; they still connect, mint and
                    // time out on their own.
                    self.devices[i].device.poll_between_turns(now_us)
                }
                None => self.devices[i].device.poll(now_us),
            };
            match want {
                Want::Wait { at } => {
                    if at != u64::MAX {
                        self.queue(i, at);
                    }
                    return;
                }
                Want::Parked => return,
                Want::Connect => {
                    let l = self.devices[i].link;
                    match self.links[l].state {
                        LinkState::Idle => {
                            self.links[l].state = LinkState::Wanted;
                            self.connect.push(l);
                        }
                        LinkState::Up => self.devices[i].device.connected(now_us),
                        LinkState::Wanted | LinkState::Connecting => return,
                    }
                    if self.links[l].state != LinkState::Up {
                        return;
                    }
                }
                Want::Token => self.mint(i, now_us),
                Want::TimedOut { .. } => {
                    self.stats.timeouts += 1;
                    self.stats.failed(self.run_start_us, now_us);
                    self.idle_hint = true;
                }
                Want::Send(req) => {
                    self.send(i, req.cseq, req.with_token, now_us);
                    if req.retry {
                        self.stats.second(self.run_start_us, now_us).retries += 1;
                    }
                    // Checked again at its Timer F, should no answer come.
                    let at = self.devices[i].device.next_due();
                    self.queue(i, at);
                    return;
                }
            }
        }
    }

    /// Device `i`'s identity, built from its number (not kept: see [`Identity`]).
    fn identity(&self, i: usize) -> Identity {
        Identity::new(
            self.profile.user_start,
            self.devices[i].number,
            self.profile.seed,
        )
    }

    /// Signs a token for device `i` (its CPU counted apart).
    fn sign(&mut self, i: usize, now_us: u64) -> Minted {
        let started = std::time::Instant::now();
        let id = self.identity(i);
        let mut input = std::mem::take(&mut self.token_text);
        input.clear();
        let claims = device_claims(
            id.user(),
            id.device(),
            now_us / 1_000_000,
            self.profile.token_ttl_s,
        );
        self.signer.signing_input(&claims, &mut input);
        let sig = self.signer.sign(input.as_bytes()).into_boxed_slice();
        self.token_text = input;
        self.stats.mint_ns += started.elapsed().as_nanos() as u64;
        self.stats.tokens_minted += 1;
        Minted {
            at_us: now_us,
            sig: Signature::Own(sig),
        }
    }

    /// The device wants a fresh token: one minted ahead if there is one, else its token from
    /// the bank if it has not used it and it is still fresh, else one signed now (in the
    /// send path: counted as `inline_mints`).
    fn mint(&mut self, i: usize, now_us: u64) {
        // A token counts its age from its signing: the device renews it at 75 % of its real
        // life.
        let refresh_after = self.profile.token_ttl_s * 750_000;
        let d = &mut self.devices[i];
        let banked = match &self.bank {
            Some(b)
                if !d.bank_taken
                    && b.signature(d.number).is_some()
                    && now_us.saturating_sub(b.signed_at_us()) < refresh_after =>
            {
                Some(b.signed_at_us())
            }
            _ => None,
        };
        let token = match (d.next_token.take(), banked) {
            (Some(t), _) => t,
            (None, Some(at_us)) => {
                d.bank_taken = true;
                Minted {
                    at_us,
                    sig: Signature::Bank,
                }
            }
            (None, None) => {
                self.stats.inline_mints += 1;
                self.sign(i, now_us)
            }
        };
        let d = &mut self.devices[i];
        d.device.token_minted(token.at_us);
        d.token = Some(token);
    }

    /// Writes device `i`'s token (compact JWS) into `out`: its claims rebuilt, its signature
    /// from the bank or its own.
    fn token_text(&self, i: usize, id: &Identity, out: &mut String) -> bool {
        let d = &self.devices[i];
        let Some(t) = &d.token else { return false };
        let sig = match &t.sig {
            Signature::Own(s) => &s[..],
            Signature::Bank => match self.bank.as_ref().and_then(|b| b.signature(d.number)) {
                Some(s) => s,
                None => return false,
            },
        };
        let claims = device_claims(
            id.user(),
            id.device(),
            t.at_us / 1_000_000,
            self.profile.token_ttl_s,
        );
        out.clear();
        self.signer.write_token(&claims, sig, out);
        true
    }

    /// Mints, within `budget_us` of CPU, the tokens devices will want soon (held tokens past
    /// 60 % of their life; the switch happens at 75 %), so that renewals spread over idle time
    /// instead of stalling the schedule when they fall due together.
    pub fn mint_ahead(&mut self, now_us: u64, budget_us: u64) {
        // Nothing to do before the earliest held token reaches 60 % of its life.
        if now_us < self.next_mint_scan {
            return;
        }
        let started = std::time::Instant::now();
        let soon = self.profile.token_ttl_s * 600_000;
        let n = self.devices.len();
        if self.mint_pass_left == 0 {
            self.mint_pass_left = n;
            self.mint_pass_earliest = u64::MAX;
            self.mint_pass_started = now_us;
        }
        let mut looked = 0u64;
        while self.mint_pass_left > 0 {
            // The clock is read once per 64 devices.
            looked += 1;
            if looked % 64 == 0 && started.elapsed().as_micros() as u64 >= budget_us {
                // Out of budget: the pass goes on from here at the next turn.
                self.next_mint_scan = now_us;
                return;
            }
            self.mint_pass_left -= 1;
            let i = self.mint_cursor;
            self.mint_cursor = (self.mint_cursor + 1) % n.max(1);
            let d = &self.devices[i];
            // The device's own record of when its token was minted (none after a refusal).
            let Some(minted) = d.device.token_minted_at() else {
                continue;
            };
            if d.next_token.is_some() || d.device.is_parked() {
                continue;
            }
            let due = minted + soon;
            if now_us >= due {
                let t = self.sign(i, now_us);
                self.devices[i].next_token = Some(t);
            } else {
                self.mint_pass_earliest = self.mint_pass_earliest.min(due);
            }
        }
        // A whole pass: the next one when the earliest token it saw comes due. A token taken
        // after the pass started comes due no sooner than `soon` after its start. (A pass
        // each second, as before, read every device's state once a second: a third of the
        // engine's CPU in a million-device storm.)
        self.next_mint_scan = self.mint_pass_earliest.min(self.mint_pass_started + soon);
    }

    /// The run is over: answers still arriving are taken, but no device sends again. Open-loop
    /// turns intended before the run's end and never sent (waiting for a device, or not yet
    /// handed out) are counted as missed, offered in the second they were intended for.
    pub fn finish(&mut self) {
        if self.finished {
            return;
        }
        self.finished = true;
        let end = self.run_start_us + self.profile.duration_s * 1_000_000;
        let mut missed: Vec<u64> = self.waiting.drain(..).collect();
        if let Some(ol) = self.open_loop.as_mut() {
            while let Some(at) = ol.take_due(end.saturating_sub(1)) {
                missed.push(at);
            }
        }
        for at in missed {
            self.stats.missed_turns += 1;
            self.stats.second(self.run_start_us, at).offered += 1;
        }
    }

    /// The run is over: every registered device that is idle sends `Expires: 0`
    /// (`unregister_at_end`); returns how many went.
    pub fn unregister_all(&mut self, now_us: u64) -> usize {
        self.finish();
        self.unregistering = true;
        let mut sent = 0;
        for i in 0..self.devices.len() {
            let d = &self.devices[i];
            let up = self.links[d.link].state == LinkState::Up;
            if !up || d.device.in_flight() || d.device.is_parked() || d.token.is_none() {
                continue;
            }
            // A token past 75 % of its life is renewed first, as for any REGISTER.
            let minted = self.devices[i].device.token_minted_at().unwrap_or(0);
            if now_us.saturating_sub(minted) >= self.profile.token_ttl_s * 750_000 {
                self.mint(i, now_us);
            }
            let cseq = self.devices[i].device.begin_final(now_us);
            self.write_register(i, cseq, true, 0, now_us);
            sent += 1;
        }
        sent
    }

    /// Requests still waiting for an answer.
    pub fn in_flight(&self) -> usize {
        self.devices.iter().filter(|d| d.device.in_flight()).count()
    }

    fn send(&mut self, i: usize, cseq: u32, with_token: bool, now_us: u64) {
        self.write_register(i, cseq, with_token, 3600, now_us);
    }

    fn write_register(&mut self, i: usize, cseq: u32, with_token: bool, expires: u32, now_us: u64) {
        let id = self.identity(i);
        let mut token = std::mem::take(&mut self.token_text);
        let has_token = with_token && self.token_text(i, &id, &mut token);
        let d = &self.devices[i];
        let l = d.link;
        let b = branch(self.profile.seed, d.number, cseq);
        let transport = match self.transport {
            Transport::Tls { .. } => "TLS",
            Transport::Tcp => "TCP",
            Transport::Udp => "UDP",
        };
        let datagram = self.transport.is_datagram();
        let link = &mut self.links[l];
        let register = Register {
            domain: &self.profile.domain,
            user: id.user(),
            local: &link.local,
            transport,
            branch: b.as_str(),
            from_tag: id.from_tag(),
            call_id: id.call_id(),
            cseq,
            contact_user: id.contact_user(),
            instance: id.instance(),
            device: id.device(),
            expires,
            token: has_token.then_some(token.as_str()),
            date: "Mon, 30 Mar 2020 11:03:19 GMT",
            body: self.profile.body == Body::Cisco,
        };
        self.stats.sent += 1;
        self.stats.second(self.run_start_us, now_us).offered += 1;
        if datagram {
            // One datagram, kept for timer E's retransmissions.
            let mut bytes = Vec::with_capacity(4096);
            register.write(&mut bytes, &self.body);
            link.datagrams.push_back(bytes.clone());
            self.token_text = token;
            self.devices[i].last = Some(bytes);
            self.retransmit
                .push(Reverse((now_us + T1_US, i, cseq, T1_US)));
            self.flag(l);
            return;
        }
        // Streams: written straight into the link's pending plaintext.
        register.write(link.plain.tail(), &self.body);
        self.token_text = token;
        self.pump_out(l);
    }

    /// Moves written REGISTERs through TLS into the link's wire buffer, and flags the link
    /// for the runtime when there is something to send.
    fn pump_out(&mut self, l: usize) {
        self.seal(l);
        if !self.links[l].wire.is_empty() {
            self.flag(l);
        }
    }

    /// Moves written REGISTERs through TLS into the link's wire buffer, up to [`WIRE_HIGH`]
    /// bytes ahead of the socket. When the peer reads slowly (a registrar behind in a
    /// storm) the backlog waits as plaintext, appended to and taken from the front without
    /// moving what is between, so the cost per REGISTER stays flat however deep the backlog.
    fn seal(&mut self, l: usize) {
        let link = &mut self.links[l];
        if link.state != LinkState::Up {
            return;
        }
        while link.wire.len() < WIRE_HIGH {
            let chunk = link.plain.front(SEAL_CHUNK);
            match &mut link.tls {
                Some(tls) => {
                    if !chunk.is_empty() {
                        // No buffer limit is set on the connection, so it takes everything.
                        let n = tls.writer().write(chunk).unwrap_or(0);
                        link.plain.consume(n);
                    }
                    while tls.wants_write() {
                        if tls.write_tls(link.wire.tail()).is_err() {
                            break;
                        }
                    }
                }
                None => {
                    let n = chunk.len();
                    link.wire.tail().extend_from_slice(chunk);
                    link.plain.consume(n);
                }
            }
            if link.plain.is_empty() {
                break;
            }
        }
    }

    /// The runtime picked up a connect request.
    pub fn connecting(&mut self, l: usize) {
        self.links[l].state = LinkState::Connecting;
    }

    /// Link `l` is connected (`local`: the socket's local address, for Via and Contact).
    pub fn link_up(&mut self, l: usize, local: &str, now_us: u64) -> Result<(), LinkError> {
        let link = &mut self.links[l];
        link.local = local.to_string();
        link.framer = Framer::new(sip::Limits::default());
        link.inbuf.clear();
        link.plain.clear();
        link.wire.clear();
        link.datagrams.clear();
        if let Transport::Tls {
            config,
            server_name,
        } = &self.transport
        {
            let mut c = rustls::ClientConnection::new(config.clone(), server_name.clone())
                .map_err(|e| LinkError::new(LinkLoss::Tls, e.to_string()))?;
            c.set_buffer_limit(None);
            link.tls = Some(Box::new(c));
            link.handshaking = true;
        }
        link.state = LinkState::Up;
        self.idle_hint = true;
        let devices = self.links[l].devices.clone();
        for i in devices {
            self.devices[i].device.connected(now_us);
            self.queue(i, now_us);
        }
        self.pump_out(l);
        Ok(())
    }

    /// Link `l` could not be opened (`connect_failed`): counted as an error, then as
    /// [`Engine::link_down`].
    pub fn link_failed(&mut self, l: usize, now_us: u64) {
        self.stats.errors += 1;
        self.stats.failed(self.run_start_us, now_us);
        self.link_lost(l, LinkLoss::ConnectFailed, now_us);
    }

    /// Link `l` was lost (the registrar closed it): see [`Engine::link_lost`].
    pub fn link_down(&mut self, l: usize, now_us: u64) {
        self.link_lost(l, LinkLoss::PeerClosed, now_us);
    }

    /// Link `l` failed to connect or was lost for `why`: every device on it goes with it (an
    /// MRA connection carries thousands), loses what was in flight and its binding (the
    /// registrar drops the bindings learnt on a connection that closes), and backs off,
    /// jittered and growing, before the link is opened again; they register again when it
    /// is back.
    pub fn link_lost(&mut self, l: usize, why: LinkLoss, now_us: u64) {
        let link = &mut self.links[l];
        let was_open = link.state != LinkState::Idle;
        link.state = LinkState::Idle;
        link.tls = None;
        link.handshaking = false;
        if was_open || why == LinkLoss::ConnectFailed {
            self.stats.connections_lost[why.index()] += 1;
        }
        let devices = self.links[l].devices.clone();
        let datagram = self.transport.is_datagram();
        for i in devices {
            if self.devices[i].device.disconnected(now_us).is_some() {
                // A REGISTER lost with its connection: a transport failure.
                self.stats.errors += 1;
                self.stats.failed(self.run_start_us, now_us);
            }
            if self.devices[i].bound && !datagram {
                self.devices[i].bound = false;
                self.stats.bound(self.run_start_us, now_us, false);
            }
            let at = self.devices[i].device.next_due();
            self.queue(i, at);
        }
    }

    /// The next datagram for link `l`'s socket (UDP).
    pub fn next_datagram(&mut self, l: usize) -> Option<Vec<u8>> {
        self.links[l].datagrams.pop_front()
    }

    /// One datagram from link `l`'s socket (UDP): a response, or dropped.
    pub fn receive_datagram(&mut self, l: usize, bytes: &[u8], now_us: u64) {
        self.receive_datagram_at(l, bytes, now_us, now_us);
    }

    /// [`Engine::receive_datagram`] for a datagram that arrived at `arrived_us` (the kernel's
    /// receive time) and is read at `now_us`: latencies end at its arrival, and what the
    /// answers make devices send goes now.
    pub fn receive_datagram_at(&mut self, l: usize, bytes: &[u8], arrived_us: u64, now_us: u64) {
        let _ = l;
        let mut headers = [EMPTY_HEADER; 64];
        if let Ok(msg) = sip::parse_datagram(bytes, &mut headers, &sip::Limits::default()) {
            self.answer(&msg, arrived_us, now_us);
        }
    }

    /// Bytes for link `l`'s socket.
    pub fn transmit(&mut self, l: usize, out: &mut Vec<u8>) {
        loop {
            self.seal(l);
            let wire = &mut self.links[l].wire;
            if wire.is_empty() {
                break;
            }
            out.extend_from_slice(wire.front(usize::MAX));
            wire.clear();
        }
    }

    /// The bytes waiting for link `l`'s socket (stream transports), at most about
    /// 256 KiB of them sealed at a time: call again after [`Engine::wrote`] until it is
    /// empty or the socket takes no more. What it does not take stays here, and the runtime, which
    /// is writing now, keeps track of it: the link is not flagged again.
    pub fn wire(&mut self, l: usize) -> &[u8] {
        self.seal(l);
        self.links[l].wire.front(usize::MAX)
    }

    /// The socket took the first `n` bytes of [`Engine::wire`].
    pub fn wrote(&mut self, l: usize, n: usize) {
        self.links[l].wire.consume(n);
    }

    /// Bytes from link `l`'s socket; an error means the link must be closed.
    pub fn receive(&mut self, l: usize, bytes: &[u8], now_us: u64) -> Result<(), LinkError> {
        self.receive_at(l, bytes, now_us, now_us)
    }

    /// [`Engine::receive`] for bytes that arrived at `arrived_us` (the kernel's receive time)
    /// and are read at `now_us`: latencies end at their arrival, and what the answers make
    /// devices send goes now.
    pub fn receive_at(
        &mut self,
        l: usize,
        bytes: &[u8],
        arrived_us: u64,
        now_us: u64,
    ) -> Result<(), LinkError> {
        let tls_err = |e: &dyn std::fmt::Display| LinkError::new(LinkLoss::Tls, e.to_string());
        let closed = || LinkError::new(LinkLoss::PeerClosed, "the registrar closed TLS");
        let link = &mut self.links[l];
        match &mut link.tls {
            Some(tls) => {
                let mut rd = bytes;
                while !rd.is_empty() {
                    match tls.read_tls(&mut rd) {
                        Ok(0) => return Err(closed()),
                        Ok(_) => {}
                        Err(e) => return Err(tls_err(&e)),
                    }
                    let state = tls.process_new_packets().map_err(|e| tls_err(&e))?;
                    let n = state.plaintext_bytes_to_read();
                    if n > 0 {
                        let start = link.inbuf.len();
                        link.inbuf.resize(start + n, 0);
                        tls.reader()
                            .read_exact(&mut link.inbuf[start..])
                            .map_err(|e| tls_err(&e))?;
                    }
                    if state.peer_has_closed() {
                        return Err(closed());
                    }
                }
                if link.handshaking && !tls.is_handshaking() {
                    link.handshaking = false;
                    self.stats.tls_handshakes += 1;
                }
            }
            None => link.inbuf.extend_from_slice(bytes),
        }
        self.dispatch(l, arrived_us, now_us)?;
        self.pump_out(l);
        Ok(())
    }

    /// Hands a response to its device (by Call-ID, for the CSeq in flight).
    fn answer(&mut self, msg: &sip::Message<'_, '_>, arrived_us: u64, now_us: u64) {
        let Some((code, answer)) = read_answer(msg) else {
            return; // a request from the registrar: not expected, ignored
        };
        if code < 200 {
            return;
        }
        let Ok(call_id) = msg.call_id() else { return };
        let Some(i) = self.device_by_call_id(call_id) else {
            return;
        };
        let Ok(cseq) = msg.cseq() else { return };
        if cseq.seq != self.devices[i].device.cseq() {
            return; // an answer to a REGISTER that already timed out
        }
        if let Some(done) = self.devices[i].device.answered(arrived_us, &answer) {
            self.devices[i].last = None;
            self.idle_hint = true;
            self.stats
                .completed(self.run_start_us, arrived_us, done.status, done.latency_us);
            if (200..300).contains(&code) {
                // RFC 3261 §10.3: a 200 to a REGISTER with expires > 0 holds a binding; one to
                // the Expires: 0 of the run's end removes it.
                let holds = !self.unregistering && answer.expires_s != Some(0);
                if holds != self.devices[i].bound {
                    self.devices[i].bound = holds;
                    self.stats.bound(self.run_start_us, arrived_us, holds);
                }
            }
            if !self.finished {
                self.poll_device(i, now_us, None);
            }
        }
    }

    /// The device whose Call-ID this is: its index is read from the user number the Call-ID
    /// carries, then the whole Call-ID compared.
    fn device_by_call_id(&self, call_id: &[u8]) -> Option<usize> {
        let first = self.devices.first()?;
        let first_user = (self.profile.user_start + first.number) as u32;
        let i = call_id_user(call_id)?.wrapping_sub(first_user) as usize;
        let d = self.devices.get(i)?;
        let (start, seed) = (self.profile.user_start, self.profile.seed);
        Identity::is_call_id(start, d.number, seed, call_id).then_some(i)
    }

    /// Frames the responses in link `l`'s buffer and hands each to its device.
    fn dispatch(&mut self, l: usize, arrived_us: u64, now_us: u64) -> Result<(), LinkError> {
        let mut inbuf = std::mem::take(&mut self.links[l].inbuf);
        let mut consumed = 0;
        let result = loop {
            let mut headers = [EMPTY_HEADER; 64];
            match self.links[l].framer.next(&inbuf[consumed..], &mut headers) {
                Ok(Frame::Partial) => break Ok(()),
                Ok(Frame::Ping) => consumed += 4,
                Ok(Frame::Crlf) => consumed += 2,
                Ok(Frame::Invalid { len, .. }) => consumed += len,
                Ok(Frame::Message(msg)) => {
                    consumed += msg.len();
                    self.answer(&msg, arrived_us, now_us);
                }
                Err(e) => {
                    break Err(LinkError::new(
                        LinkLoss::Protocol,
                        format!("unframable answer: {e}"),
                    ))
                }
            }
        };
        inbuf.drain(..consumed);
        self.links[l].inbuf = inbuf;
        result
    }
}
