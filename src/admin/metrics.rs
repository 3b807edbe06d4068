//! Counters kept per core and summed only when `/metrics` is rendered.
//!
//! Each core owns one [`CoreMetrics`] block and is its only writer, so the hot path never
//! shares a cache line with another core: a block is aligned to 128 bytes (two lines, because
//! the adjacent-line prefetcher fetches in pairs) and the renderer reads every block with
//! Relaxed loads. A scrape therefore sees each counter at some recent value, not one snapshot
//! of all of them, which is what Prometheus expects of a counter.

use crate::config::ListenerKind;
use std::io::Write;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};

/// The status codes the registrar can answer, each with its own `status` label; anything else
/// is counted as `status="other"`.
pub const REGISTER_STATUSES: [u16; 14] = [
    200, 400, 401, 403, 404, 405, 407, 416, 420, 423, 500, 501, 503, 505,
];

/// One slot per status in [`REGISTER_STATUSES`], then "other".
const STATUS_SLOTS: usize = REGISTER_STATUSES.len() + 1;

/// The `status` label of each slot; MUST list [`REGISTER_STATUSES`] in order.
const STATUS_LABELS: [&str; STATUS_SLOTS] = [
    "200", "400", "401", "403", "404", "405", "407", "416", "420", "423", "500", "501", "503",
    "505", "other",
];

/// Listener kinds in label order; [`listener_slot`] MUST agree with it.
const LISTENERS: [ListenerKind; 4] = [
    ListenerKind::Oauth,
    ListenerKind::Mra,
    ListenerKind::Tcp,
    ListenerKind::Udp,
];

const fn listener_slot(kind: ListenerKind) -> usize {
    match kind {
        ListenerKind::Oauth => 0,
        ListenerKind::Mra => 1,
        ListenerKind::Tcp => 2,
        ListenerKind::Udp => 3,
    }
}

fn status_slot(status: u16) -> usize {
    REGISTER_STATUSES
        .iter()
        .position(|&s| s == status)
        .unwrap_or(REGISTER_STATUSES.len())
}

/// Why a connection was refused (`regstorm_connections_refused_total{reason=...}`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Refusal {
    /// The connection limit of the listener or the process was reached.
    Limit,
    /// The MRA peer's certificate does not name an allowed Expressway-C.
    MraName,
    /// The TLS handshake failed or timed out.
    Tls,
}

impl Refusal {
    const ALL: [Refusal; 3] = [Refusal::Limit, Refusal::MraName, Refusal::Tls];

    pub fn as_str(self) -> &'static str {
        match self {
            Refusal::Limit => "limit",
            Refusal::MraName => "mra_name",
            Refusal::Tls => "tls",
        }
    }
}

/// Why a connection ended (`regstorm_connections_closed_total{reason=...}`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CloseCause {
    /// The peer closed (FIN, or a TLS close_notify).
    PeerClosed,
    /// The TLS handshake did not finish in `handshake_timeout_s` of the peer's time.
    HandshakeTimeout,
    /// No complete message for `idle_timeout_s`.
    Idle,
    /// A message was begun and not finished in `handshake_timeout_s` (a slow sender).
    MessageTimeout,
    /// TLS failed (a bad record, an alert, a refused certificate chain).
    Tls,
    /// The client certificate does not name an allowed Expressway-C.
    MraName,
    /// The byte stream could not be framed any more (after a 400 where one could be written).
    Framing,
    /// Reading or writing the socket failed (a reset, a peer that does not read).
    Socket,
    /// The registrar was stopping.
    Stopping,
}

impl CloseCause {
    const ALL: [CloseCause; 9] = [
        CloseCause::PeerClosed,
        CloseCause::HandshakeTimeout,
        CloseCause::Idle,
        CloseCause::MessageTimeout,
        CloseCause::Tls,
        CloseCause::MraName,
        CloseCause::Framing,
        CloseCause::Socket,
        CloseCause::Stopping,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            CloseCause::PeerClosed => "peer_closed",
            CloseCause::HandshakeTimeout => "handshake_timeout",
            CloseCause::Idle => "idle_timeout",
            CloseCause::MessageTimeout => "message_timeout",
            CloseCause::Tls => "tls",
            CloseCause::MraName => "mra_name",
            CloseCause::Framing => "framing",
            CloseCause::Socket => "socket",
            CloseCause::Stopping => "stopping",
        }
    }
}

/// One core's counters. Every method is a Relaxed atomic on this block only; it MUST be called
/// from the core that owns the block (another writer would lose nothing, since adds are
/// `fetch_add`, but would bring back the cache-line traffic this layout avoids).
#[derive(Debug, Default)]
#[repr(align(128))]
pub struct CoreMetrics {
    registers: [AtomicU64; STATUS_SLOTS],
    other_requests: [AtomicU64; STATUS_SLOTS],
    opened: [AtomicU64; 4],
    closed: [AtomicU64; 4],
    closed_by: [[AtomicU64; 9]; 4],
    refused: [[AtomicU64; 3]; 4],
    tls_handshakes: AtomicU64,
    tls_handshake_failures: AtomicU64,
    token_cache_hits: AtomicU64,
    token_cache_misses: AtomicU64,
    token_verifications: AtomicU64,
    token_cache_entries: AtomicU64,
    bytes_in: AtomicU64,
    bytes_out: AtomicU64,
    overload_rejections: AtomicU64,
    verify_admitted: AtomicU64,
    verify_shed: AtomicU64,
    verify_returned: AtomicU64,
    verify_shed_again: AtomicU64,
    connections_admitted: AtomicU64,
    connections_deferred: AtomicU64,
    standing_queues: AtomicU64,
    /// The last queueing delay the core measured (µs; a gauge, the largest core is shown).
    queue_delay_us: AtomicU64,
    reloads: AtomicU64,
}

/// Picks one counter out of a block.
type Counter = fn(&CoreMetrics) -> &AtomicU64;

fn add(counter: &AtomicU64, n: u64) {
    counter.fetch_add(n, Relaxed);
}

impl CoreMetrics {
    /// A REGISTER was answered with `status`.
    pub fn register_answered(&self, status: u16) {
        add(&self.registers[status_slot(status)], 1);
    }

    /// A request other than REGISTER (OPTIONS, INVITE, an unknown method...) was answered.
    pub fn other_answered(&self, status: u16) {
        add(&self.other_requests[status_slot(status)], 1);
    }

    /// A connection was accepted on a listener of `kind`; pair with [`Self::connection_closed`].
    pub fn connection_opened(&self, kind: ListenerKind) {
        add(&self.opened[listener_slot(kind)], 1);
    }

    /// A connection counted by [`Self::connection_opened`] was closed, for `cause`.
    pub fn connection_closed(&self, kind: ListenerKind, cause: CloseCause) {
        add(&self.closed[listener_slot(kind)], 1);
        add(&self.closed_by[listener_slot(kind)][cause as usize], 1);
    }

    /// A connection was refused. This says nothing of `opened`/`closed`: a connection refused
    /// after it was counted open must still be closed with [`Self::connection_closed`].
    pub fn connection_refused(&self, kind: ListenerKind, reason: Refusal) {
        add(&self.refused[listener_slot(kind)][reason as usize], 1);
    }

    /// A TLS handshake completed.
    pub fn tls_handshake_completed(&self) {
        add(&self.tls_handshakes, 1);
    }

    /// A TLS handshake failed.
    pub fn tls_handshake_failed(&self) {
        add(&self.tls_handshake_failures, 1);
    }

    /// Copies this core's verifier statistics; the arguments are running totals, so they are
    /// stored, not added.
    pub fn set_token_stats(&self, hits: u64, misses: u64, verifications: u64) {
        self.token_cache_hits.store(hits, Relaxed);
        self.token_cache_misses.store(misses, Relaxed);
        self.token_verifications.store(verifications, Relaxed);
    }

    /// Entries in this core's verified-token cache now (summed over cores when rendered).
    pub fn set_token_cache_entries(&self, entries: u64) {
        self.token_cache_entries.store(entries, Relaxed);
    }

    /// Bytes read from SIP connections and datagrams (after TLS, or raw: the runtime's choice,
    /// the same on every core).
    pub fn bytes_in(&self, n: u64) {
        add(&self.bytes_in, n);
    }

    /// Bytes written to SIP connections and datagrams.
    pub fn bytes_out(&self, n: u64) {
        add(&self.bytes_out, n);
    }

    /// A request was answered 503 because the core was overloaded.
    pub fn overload_rejected(&self) {
        add(&self.overload_rejections, 1);
    }

    /// This core's running total of overload rejections (stored, not added), for a runtime
    /// that reads it from the verifier.
    pub fn set_overload_rejections(&self, total: u64) {
        self.overload_rejections.store(total, Relaxed);
    }

    /// Copies this core's admission totals (running totals: stored, not added).
    pub fn set_admission(&self, a: &crate::registrar::AdmissionStats) {
        self.verify_admitted.store(a.verify_admitted, Relaxed);
        self.verify_shed.store(a.verify_shed, Relaxed);
        self.verify_returned.store(a.verify_returned, Relaxed);
        self.verify_shed_again.store(a.verify_shed_again, Relaxed);
        self.connections_admitted
            .store(a.connections_admitted, Relaxed);
        self.connections_deferred
            .store(a.connections_deferred, Relaxed);
        self.standing_queues.store(a.standing_queues, Relaxed);
    }

    /// The queueing delay the core measured last (µs).
    pub fn set_queue_delay_us(&self, us: u64) {
        self.queue_delay_us.store(us, Relaxed);
    }

    /// The configuration or key set was reloaded (count it on one core only).
    pub fn reloaded(&self) {
        add(&self.reloads, 1);
    }
}

/// Every core's counters. Share it as `Arc<Metrics>`; core `i` writes `metrics.core(i)`.
#[derive(Debug)]
pub struct Metrics {
    cores: Box<[CoreMetrics]>,
}

impl Metrics {
    pub fn new(cores: usize) -> Self {
        Metrics {
            cores: (0..cores).map(|_| CoreMetrics::default()).collect(),
        }
    }

    /// The block of core `i`. Panics when `i` is not below the count given to [`Self::new`].
    pub fn core(&self, i: usize) -> &CoreMetrics {
        &self.cores[i]
    }

    pub fn cores(&self) -> usize {
        self.cores.len()
    }

    /// Token cache hits and misses, all cores together (as last published by each core).
    pub fn token_cache_totals(&self) -> (u64, u64) {
        (
            self.sum(|c| &c.token_cache_hits),
            self.sum(|c| &c.token_cache_misses),
        )
    }

    fn sum(&self, field: impl Fn(&CoreMetrics) -> &AtomicU64) -> u64 {
        self.cores
            .iter()
            .fold(0u64, |acc, c| acc.wrapping_add(field(c).load(Relaxed)))
    }

    /// Appends every metric in the Prometheus text exposition format 0.0.4. `bindings` is the
    /// number of bindings now (one global figure, read from the binding table by the caller).
    pub fn render(&self, bindings: u64, out: &mut Vec<u8>) {
        let mut w = Exposition { out };

        w.family(
            "regstorm_bindings",
            "gauge",
            "Current bindings (contacts registered to an AOR).",
        );
        w.sample("regstorm_bindings", &[], bindings);

        for (name, help, field) in [
            (
                "regstorm_registers_total",
                "REGISTER requests answered, by status code.",
                (|c: &CoreMetrics| &c.registers) as fn(&CoreMetrics) -> &[AtomicU64; STATUS_SLOTS],
            ),
            (
                "regstorm_other_requests_total",
                "Requests other than REGISTER answered, by status code.",
                |c: &CoreMetrics| &c.other_requests,
            ),
        ] {
            w.family(name, "counter", help);
            for (slot, status) in STATUS_LABELS.into_iter().enumerate() {
                let n = self.sum(|c| &field(c)[slot]);
                w.sample(name, &[("status", status)], n);
            }
        }

        w.family(
            "regstorm_connections",
            "gauge",
            "Connections open now, by listener kind.",
        );
        for kind in LISTENERS {
            let i = listener_slot(kind);
            // Closed first: a close seen implies its open happened before; saturating anyway,
            // since Relaxed loads of two counters are no snapshot.
            let closed = self.sum(|c| &c.closed[i]);
            let opened = self.sum(|c| &c.opened[i]);
            let open = opened.saturating_sub(closed);
            w.sample("regstorm_connections", &[("listener", kind.as_str())], open);
        }
        w.family(
            "regstorm_connections_total",
            "counter",
            "Connections accepted, by listener kind.",
        );
        for kind in LISTENERS {
            let n = self.sum(|c| &c.opened[listener_slot(kind)]);
            w.sample(
                "regstorm_connections_total",
                &[("listener", kind.as_str())],
                n,
            );
        }
        w.family(
            "regstorm_connections_closed_total",
            "counter",
            "Connections closed, by listener kind and reason.",
        );
        for kind in LISTENERS {
            for cause in CloseCause::ALL {
                let n = self.sum(|c| &c.closed_by[listener_slot(kind)][cause as usize]);
                let labels = [("listener", kind.as_str()), ("reason", cause.as_str())];
                w.sample("regstorm_connections_closed_total", &labels, n);
            }
        }
        w.family(
            "regstorm_admission_total",
            "counter",
            "Admission decisions by class (verify: fresh token verifications; connection: \
             new connections) and outcome (admitted; shed: answered 503; deferred: held to \
             the next tick).",
        );
        for (class, outcome, field) in [
            ("verify", "admitted", (|c| &c.verify_admitted) as Counter),
            ("verify", "shed", |c| &c.verify_shed),
            ("connection", "admitted", |c| &c.connections_admitted),
            ("connection", "deferred", |c| &c.connections_deferred),
        ] {
            let labels = [("class", class), ("outcome", outcome)];
            w.sample("regstorm_admission_total", &labels, self.sum(field));
        }
        w.family(
            "regstorm_admission_returns_total",
            "counter",
            "Fresh tokens that came back to the place a 503 kept for them on the retry \
             calendar, by outcome (verified ahead of new ones; shed: sent away again).",
        );
        for (outcome, field) in [
            ("verified", (|c| &c.verify_returned) as Counter),
            ("shed", |c| &c.verify_shed_again),
        ] {
            w.sample(
                "regstorm_admission_returns_total",
                &[("outcome", outcome)],
                self.sum(field),
            );
        }
        w.family(
            "regstorm_admission_standing_queues_total",
            "counter",
            "Admission intervals that ended with a standing queue (the budgets were cut).",
        );
        w.sample(
            "regstorm_admission_standing_queues_total",
            &[],
            self.sum(|c| &c.standing_queues),
        );
        w.family(
            "regstorm_queue_delay_seconds",
            "gauge",
            "How long work waits in a core's run queue now (the largest core).",
        );
        let delay = self
            .cores
            .iter()
            .map(|c| c.queue_delay_us.load(Relaxed))
            .max()
            .unwrap_or(0);
        let _ = writeln!(
            w.out,
            "regstorm_queue_delay_seconds {}.{:06}",
            delay / 1_000_000,
            delay % 1_000_000
        );
        w.family(
            "regstorm_connections_refused_total",
            "counter",
            "Connections refused, by listener kind and reason.",
        );
        for kind in LISTENERS {
            for reason in Refusal::ALL {
                let n = self.sum(|c| &c.refused[listener_slot(kind)][reason as usize]);
                let labels = [("listener", kind.as_str()), ("reason", reason.as_str())];
                w.sample("regstorm_connections_refused_total", &labels, n);
            }
        }

        let scalars: [(&str, &str, &str, Counter); 10] = [
            (
                "regstorm_tls_handshakes_total",
                "counter",
                "TLS handshakes completed.",
                |c| &c.tls_handshakes,
            ),
            (
                "regstorm_tls_handshake_failures_total",
                "counter",
                "TLS handshakes that failed.",
                |c| &c.tls_handshake_failures,
            ),
            (
                "regstorm_token_cache_hits_total",
                "counter",
                "Bearer tokens found in the verified-token cache.",
                |c| &c.token_cache_hits,
            ),
            (
                "regstorm_token_cache_misses_total",
                "counter",
                "Bearer tokens not found in the verified-token cache.",
                |c| &c.token_cache_misses,
            ),
            (
                "regstorm_token_verifications_total",
                "counter",
                "Token signatures verified (cache misses that reached the signature check).",
                |c| &c.token_verifications,
            ),
            (
                "regstorm_token_cache_entries",
                "gauge",
                "Entries in the verified-token caches of all cores.",
                |c| &c.token_cache_entries,
            ),
            (
                "regstorm_bytes_in_total",
                "counter",
                "Bytes received on SIP listeners.",
                |c| &c.bytes_in,
            ),
            (
                "regstorm_bytes_out_total",
                "counter",
                "Bytes sent on SIP listeners.",
                |c| &c.bytes_out,
            ),
            (
                "regstorm_overload_rejections_total",
                "counter",
                "Requests answered 503 because a core was overloaded.",
                |c| &c.overload_rejections,
            ),
            (
                "regstorm_reloads_total",
                "counter",
                "Configuration and key set reloads.",
                |c| &c.reloads,
            ),
        ];
        for (name, kind, help, field) in scalars {
            w.family(name, kind, help);
            w.sample(name, &[], self.sum(field));
        }
    }
}

/// A writer of the text exposition format 0.0.4.
struct Exposition<'a> {
    out: &'a mut Vec<u8>,
}

impl Exposition<'_> {
    /// `# HELP` and `# TYPE`; help text escapes `\` and line feeds.
    fn family(&mut self, name: &str, kind: &str, help: &str) {
        self.out.extend_from_slice(b"# HELP ");
        self.out.extend_from_slice(name.as_bytes());
        self.out.push(b' ');
        escape_into(help, false, self.out);
        self.out.extend_from_slice(b"\n# TYPE ");
        self.out.extend_from_slice(name.as_bytes());
        self.out.push(b' ');
        self.out.extend_from_slice(kind.as_bytes());
        self.out.push(b'\n');
    }

    /// `name{label="value",...} n`.
    fn sample(&mut self, name: &str, labels: &[(&str, &str)], value: u64) {
        self.out.extend_from_slice(name.as_bytes());
        if !labels.is_empty() {
            self.out.push(b'{');
            for (i, (k, v)) in labels.iter().enumerate() {
                if i > 0 {
                    self.out.push(b',');
                }
                self.out.extend_from_slice(k.as_bytes());
                self.out.extend_from_slice(b"=\"");
                escape_into(v, true, self.out);
                self.out.push(b'"');
            }
            self.out.push(b'}');
        }
        // Writing to a Vec cannot fail.
        let _ = writeln!(self.out, " {value}");
    }
}

/// Escapes `\` and line feed (and `"` in label values), as the text format requires.
fn escape_into(s: &str, label_value: bool, out: &mut Vec<u8>) {
    for &b in s.as_bytes() {
        match b {
            b'\\' => out.extend_from_slice(b"\\\\"),
            b'\n' => out.extend_from_slice(b"\\n"),
            b'"' if label_value => out.extend_from_slice(b"\\\""),
            _ => out.push(b),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn label_values_and_help_are_escaped() {
        let mut out = Vec::new();
        escape_into("a\\b\"c\nd", true, &mut out);
        assert_eq!(out, b"a\\\\b\\\"c\\nd");
        out.clear();
        escape_into("a\\b\"c\nd", false, &mut out);
        assert_eq!(out, b"a\\\\b\"c\\nd");
    }

    #[test]
    fn blocks_do_not_share_cache_lines() {
        assert_eq!(align_of::<CoreMetrics>(), 128);
        assert_eq!(size_of::<CoreMetrics>() % 128, 0);
    }

    #[test]
    fn status_labels_follow_the_statuses() {
        for (slot, status) in REGISTER_STATUSES.iter().enumerate() {
            assert_eq!(STATUS_LABELS[slot], status.to_string());
            assert_eq!(status_slot(*status), slot);
        }
        assert_eq!(STATUS_LABELS[status_slot(999)], "other");
    }
}
