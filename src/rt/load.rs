//! The load engine's runtime: one glommio executor per engine core, pinned to its CPU, each
//! driving the [`Engine`] of its share of the devices. Everything SIP, TLS and statistical
//! happens in the engine; this file moves bytes and keeps time.
//!
//! Each core runs one loop on a fixed tick ([`TICK_US`]): it asks epoll which sockets have
//! something, reads those without waiting, runs the devices that are due, writes every
//! connection's pending bytes in one non-blocking send each, and sleeps to the next tick.
//! Answers are stamped with their arrival time by the kernel (`SO_TIMESTAMPNS`), not with
//! the time of the read, so the tick does not add to latency; a REGISTER sent up to one tick
//! after its time counts from when it went out (see
//! [`crate::load::device::Timing::send_slack_us`]).
//!
//! Why not io_uring here, as in the registrar: on this VM every io_uring wake-up of a task
//! waiting on a socket is delivered as task work with an inter-processor interrupt, about ten
//! microseconds on each side, once per answer; with epoll and a tick, a socket that gets data
//! while the loop is busy or asleep costs nothing until the tick reads it, and a steady load
//! on a connection costs one wake-up and one send per tick instead of one of each per
//! REGISTER. The sleep is a plain `clock_nanosleep`: the loop is the executor's only task.

use super::{now_us, IO_MEMORY};
use crate::auth::Signer;
use crate::load::engine::{Engine, LinkError, LinkLoss, Stats, Transport};
use crate::load::profile::Profile;
use crate::load::tokens::TokenBank;
use glommio::{LocalExecutorBuilder, Placement};
use nix::errno::Errno;
use nix::sys::epoll::{Epoll, EpollCreateFlags, EpollEvent, EpollFlags};
use nix::sys::socket::{self, sockopt, ControlMessageOwned, MsgFlags};
use std::io::IoSliceMut;
use std::net::SocketAddr;
use std::os::fd::{AsRawFd, RawFd};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Barrier};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// The core loop's period (µs): sends go out, and quick connections are read, once per tick.
/// Also the send slack: a device due within a tick goes at the next one, without that
/// counting as latency.
pub const TICK_US: u64 = 4_000;
/// At the end of a run, how long the answers to REGISTERs already sent are awaited.
const DRAIN_US: u64 = 2_000_000;
/// Socket events taken from epoll per call.
const EVENTS: usize = 1024;
/// Bytes read from a socket at a time (one buffer per core).
const READ_BUF: usize = 64 * 1024;
/// Makes each core's signer (a `Signer` is per core, like everything else).
pub type SignerFactory = Arc<dyn Fn() -> Result<Signer, String> + Send + Sync>;

/// A run to make.
#[derive(Clone)]
pub struct Plan {
    pub profile: Profile,
    pub target: SocketAddr,
    pub transport: Transport,
    pub signer: SignerFactory,
    /// CPUs for the engine's executors, one each.
    pub cpus: Vec<usize>,
    /// The run's earliest start (µs, the registrar's clock): the ramp counts from here, or
    /// from when the first tokens are signed and every core has built its devices, if later.
    pub start_us: u64,
}

impl std::fmt::Debug for Plan {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Plan")
            .field("profile", &self.profile.name)
            .field("target", &self.target)
            .field("cpus", &self.cpus)
            .finish()
    }
}

/// Live counters for the progress line, summed over cores.
#[derive(Debug, Default)]
pub struct Live {
    /// When the schedule starts (µs), 0 while tokens are signed and devices built.
    pub start_us: AtomicU64,
    pub sent: AtomicU64,
    pub completed: AtomicU64,
    pub errors: AtomicU64,
}

/// What a run produced.
#[derive(Debug)]
pub struct Outcome {
    pub stats: Stats,
    /// CPU seconds of the engine's executor threads (building devices, the run, the drain).
    pub cpu_s: f64,
    /// Of those, the CPU seconds of the schedule itself (from its start to its end).
    pub run_cpu_s: f64,
    /// When the schedule started (µs).
    pub start_us: u64,
    /// The first tokens, signed before the schedule started.
    pub bank: BankFigures,
    /// The run's connections, still open: a registrar drops the bindings of a connection
    /// that closes, so its state is read before this is dropped.
    pub connections: OpenConnections,
}

/// What signing the first tokens cost, before the run.
#[derive(Clone, Copy, Debug, Default)]
pub struct BankFigures {
    pub tokens: u64,
    /// CPU seconds of the signing threads.
    pub cpu_s: f64,
    /// Wall seconds the run waited for them.
    pub wall_s: f64,
    pub threads: usize,
    /// Bytes of signatures held for the run.
    pub bytes: u64,
}

/// Signs every device's first token on `threads` threads (the signature is the only work
/// per token) before the schedule starts, so that a storm's first REGISTERs do not wait
/// for the signer.
fn sign_bank(plan: &Plan, threads: usize) -> Result<(TokenBank, BankFigures), String> {
    let p = &plan.profile;
    let signer = (plan.signer)()?;
    let started = std::time::Instant::now();
    let mut bank = TokenBank::new(&signer, p.devices, p.user_start, p.token_ttl_s, now_us());
    let threads = threads.clamp(1, 64);
    let cpu_ns = AtomicU64::new(0);
    std::thread::scope(|scope| -> Result<(), String> {
        let mut handles = Vec::new();
        for share in bank.shares_mut(threads) {
            let factory = plan.signer.clone();
            let cpu_ns = &cpu_ns;
            handles.push(scope.spawn(move || -> Result<(), String> {
                let cpu0 = thread_cpu_ns();
                let signer = factory()?;
                share.sign(&signer);
                cpu_ns.fetch_add(thread_cpu_ns().saturating_sub(cpu0), Ordering::Relaxed);
                Ok(())
            }));
        }
        for h in handles {
            h.join()
                .map_err(|_| "a token-signing thread panicked".to_string())??;
        }
        Ok(())
    })?;
    let figures = BankFigures {
        tokens: bank.len() as u64,
        cpu_s: cpu_ns.load(Ordering::Relaxed) as f64 / 1e9,
        wall_s: started.elapsed().as_secs_f64(),
        threads,
        bytes: bank.bytes() as u64,
    };
    Ok((bank, figures))
}

/// Every core has built its engine; the start is fixed once they all have.
struct StartGate {
    barrier: Barrier,
    start_us: AtomicU64,
}

/// Connections kept open until dropped.
pub struct OpenConnections(Vec<Conn>);

impl std::fmt::Debug for OpenConnections {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} open connections", self.0.len())
    }
}

/// CPU time of the calling thread, in ns.
fn thread_cpu_ns() -> u64 {
    std::fs::read_to_string("/proc/thread-self/schedstat")
        .ok()
        .and_then(|s| s.split_whitespace().next()?.parse().ok())
        .unwrap_or(0)
}

/// Runs the plan to its end; returns the merged statistics.
pub fn run(plan: Plan, live: Arc<Live>) -> Result<Outcome, String> {
    let p = &plan.profile;
    // No more executors than connections: each executor holds at least one.
    let cpus: Vec<usize> = plan
        .cpus
        .iter()
        .copied()
        .take(p.connections.max(1) as usize)
        .collect();
    let cores = cpus.len().max(1) as u64;
    // The first tokens, on every CPU this process may use (the registrar of `bench` is idle
    // until the run starts).
    let threads = std::thread::available_parallelism().map_or(1, |n| n.get());
    let (bank, bank_figures) = sign_bank(&plan, threads)?;
    let bank = Arc::new(bank);
    let gate = Arc::new(StartGate {
        barrier: Barrier::new(cpus.len() + 1),
        start_us: AtomicU64::new(0),
    });
    let mut handles = Vec::new();
    for (k, &cpu) in cpus.iter().enumerate() {
        let k = k as u64;
        let first = p.devices * k / cores;
        let count = p.devices * (k + 1) / cores - first;
        let links = (p.connections * (k + 1) / cores - p.connections * k / cores).max(1);
        let plan = plan.clone();
        let live = live.clone();
        let (bank, gate_k) = (bank.clone(), gate.clone());
        let share = Share {
            first,
            count,
            links,
            cores,
        };
        let h = LocalExecutorBuilder::new(Placement::Fixed(cpu))
            .name(&format!("regstorm-load-{k}"))
            .io_memory(IO_MEMORY)
            .spawn(move || async move { core(plan, share, bank, gate_k, live) });
        match h {
            Ok(h) => handles.push(h),
            Err(e) => {
                // The cores already started wait at the gate: stand in for the others and
                // for this thread, with no start, so that they stop.
                for _ in k as usize..cpus.len() + 1 {
                    let gate = gate.clone();
                    std::thread::spawn(move || {
                        gate.barrier.wait();
                        gate.barrier.wait();
                    });
                }
                for h in handles {
                    let _ = h.join();
                }
                return Err(format!("starting load executor {k}: {e}"));
            }
        }
    }
    // Every core has built its devices: the schedule starts now (plus a little for the
    // cores to take it up), or at the plan's start if later.
    gate.barrier.wait();
    let start_us = plan.start_us.max(now_us() + 50_000);
    gate.start_us.store(start_us, Ordering::SeqCst);
    live.start_us.store(start_us, Ordering::Relaxed);
    gate.barrier.wait();
    let mut stats = Stats::default();
    let (mut cpu_ns, mut run_ns) = (0, 0);
    let mut open = Vec::new();
    for h in handles {
        match h.join() {
            Ok(Ok(c)) => {
                stats.merge(&c.stats);
                cpu_ns += c.cpu_ns;
                run_ns += c.run_cpu_ns;
                open.extend(c.conns);
            }
            Ok(Err(e)) => return Err(e),
            Err(e) => return Err(format!("load executor failed: {e}")),
        }
    }
    Ok(Outcome {
        stats,
        cpu_s: cpu_ns as f64 / 1e9,
        run_cpu_s: run_ns as f64 / 1e9,
        start_us,
        bank: bank_figures,
        connections: OpenConnections(open),
    })
}

/// One core's part of the devices and connections.
#[derive(Clone, Copy, Debug)]
struct Share {
    first: u64,
    count: u64,
    links: u64,
    cores: u64,
}

/// What a core hands back.
struct CoreOutcome {
    stats: Stats,
    cpu_ns: u64,
    run_cpu_ns: u64,
    conns: Vec<Conn>,
}

/// One connection's socket. The core loop owns it and does all its I/O without waiting;
/// epoll says which sockets have something.
enum Conn {
    Tcp(std::net::TcpStream),
    Udp(std::net::UdpSocket),
}

impl Conn {
    fn fd(&self) -> RawFd {
        match self {
            Conn::Tcp(s) => s.as_raw_fd(),
            Conn::Udp(s) => s.as_raw_fd(),
        }
    }

    fn is_datagram(&self) -> bool {
        matches!(self, Conn::Udp(_))
    }

    fn local(&self) -> String {
        let a = match self {
            Conn::Tcp(s) => s.local_addr(),
            Conn::Udp(s) => s.local_addr(),
        };
        a.map_or_else(|_| "127.0.0.1:5062".to_string(), |a| a.to_string())
    }
}

struct Slot {
    conn: Conn,
    /// The TCP connect has not finished.
    connecting: bool,
    /// In `Core::blocked` (bytes are left that the socket did not take).
    blocked: bool,
}

/// One core: its engine, its connections, and the buffers of their I/O.
struct Core {
    engine: Engine,
    slots: Vec<Option<Slot>>,
    epoll: Epoll,
    events: Vec<EpollEvent>,
    buf: Vec<u8>,
    /// Ancillary data (the receive timestamp) of one read.
    cmsg: Vec<u8>,
    target: SocketAddr,
    datagram: bool,
    /// Links with bytes their socket did not take, written again at the next tick.
    blocked: Vec<usize>,
    /// The wall clock minus the engine's clock (µs), read once per turn: it turns the
    /// kernel's receive stamps into engine time with one clock read per socket read.
    wall_ahead_us: i64,
}

fn core(
    plan: Plan,
    share: Share,
    bank: Arc<TokenBank>,
    gate: Arc<StartGate>,
    live: Arc<Live>,
) -> Result<CoreOutcome, String> {
    let cpu0 = thread_cpu_ns();
    let built = (plan.signer)().map(|signer| {
        let mut e = Engine::new(
            &plan.profile,
            plan.transport.clone(),
            signer,
            share.first,
            share.count,
            share.links,
            plan.start_us,
        );
        e.set_bank(bank);
        if plan.profile.rate > 0.0 {
            e.set_rate(plan.profile.rate / share.cores as f64);
        }
        e.set_send_slack(TICK_US);
        e
    });
    // Every core waits for the others (and the start) even when it failed, so none is left
    // at the gate.
    gate.barrier.wait();
    gate.barrier.wait();
    let mut e = built?;
    let start_us = gate.start_us.load(Ordering::SeqCst);
    if start_us == 0 {
        return Err("the run did not start".into());
    }
    e.start(start_us);
    let cpu_run0 = thread_cpu_ns();
    let n_links = e.links();
    let mut c = Core {
        engine: e,
        slots: (0..n_links).map(|_| None).collect(),
        epoll: Epoll::new(EpollCreateFlags::EPOLL_CLOEXEC).map_err(|e| format!("epoll: {e}"))?,
        events: vec![EpollEvent::empty(); EVENTS],
        buf: vec![0u8; READ_BUF],
        cmsg: nix::cmsg_space!(nix::sys::time::TimeSpec),
        target: plan.target,
        datagram: plan.transport.is_datagram(),
        blocked: Vec::new(),
        wall_ahead_us: 0,
    };
    let end = start_us + plan.profile.duration_s * 1_000_000;
    // Minting ahead gets at most this much CPU per turn (tokens cost ~20-50 µs each).
    const MINT_BUDGET_US: u64 = 500;
    let (mut sent, mut completed, mut errors) = (0, 0, 0);
    let mut next_tick = now_us();
    loop {
        let now = now_us();
        if now >= end {
            break;
        }
        c.poll_sockets();
        let now = now_us();
        c.engine.run_due(now);
        c.engine.mint_ahead(now, MINT_BUDGET_US);
        for l in c.engine.take_connects() {
            c.open(l);
        }
        c.flush_all();
        {
            // Progress, as deltas of this core's counters.
            let s = c.engine.stats();
            let done: u64 = s.responses.values().sum();
            live.sent.fetch_add(s.sent - sent, Ordering::Relaxed);
            live.completed
                .fetch_add(done - completed, Ordering::Relaxed);
            let errs = s.errors + s.timeouts;
            live.errors.fetch_add(errs - errors, Ordering::Relaxed);
            (sent, completed, errors) = (s.sent, done, errs);
        }
        // The next turn on the tick's grid; after a turn that overran, one tick from now.
        let now = now_us();
        next_tick += TICK_US;
        if next_tick <= now {
            next_tick = now + TICK_US;
        }
        std::thread::sleep(Duration::from_micros(
            next_tick.min(end).saturating_sub(now),
        ));
    }
    // What fell due before the end goes out (open-loop turns included: a turn intended
    // before the end and not sent is a missed send).
    c.engine.run_due(end - 1);
    c.flush_all();
    let run_cpu_ns = thread_cpu_ns().saturating_sub(cpu_run0);
    // The REGISTERs already sent get their answers (for up to DRAIN_US): the registrar's
    // counts and the engine's then agree.
    c.engine.finish();
    let until = now_us() + DRAIN_US;
    while c.engine.in_flight() > 0 && now_us() < until {
        std::thread::sleep(Duration::from_micros(TICK_US));
        c.poll_sockets();
        c.flush_all();
    }
    if plan.profile.unregister_at_end {
        // Expires: 0 for every registered device; answers awaited for up to 5 s.
        let sent = c.engine.unregister_all(now_us());
        c.flush_all();
        let until = now_us() + 5_000_000;
        while sent > 0 && c.engine.in_flight() > 0 && now_us() < until {
            std::thread::sleep(Duration::from_micros(TICK_US));
            c.poll_sockets();
            c.flush_all();
        }
    }
    let stats = c.engine.stats().clone();
    let conns = c.slots.into_iter().flatten().map(|s| s.conn).collect();
    Ok(CoreOutcome {
        stats,
        cpu_ns: thread_cpu_ns().saturating_sub(cpu0),
        run_cpu_ns,
        conns,
    })
}

impl Core {
    /// Handles what epoll reports: connects that finished, sockets with something to read.
    fn poll_sockets(&mut self) {
        let wall = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_micros() as i64);
        self.wall_ahead_us = wall - now_us() as i64;
        loop {
            let n = match self.epoll.wait(&mut self.events, 0) {
                Ok(n) => n,
                Err(Errno::EINTR) => continue,
                Err(e) => {
                    tracing::warn!("load: epoll: {e}");
                    return;
                }
            };
            for i in 0..n {
                let (l, flags) = (self.events[i].data() as usize, self.events[i].events());
                let Some(slot) = self.slots.get(l).and_then(Option::as_ref) else {
                    continue; // closed earlier in this batch
                };
                if slot.connecting {
                    self.connected(l);
                    continue;
                }
                let readable = EpollFlags::EPOLLIN
                    | EpollFlags::EPOLLRDHUP
                    | EpollFlags::EPOLLHUP
                    | EpollFlags::EPOLLERR;
                if flags.intersects(readable) {
                    if let Err(e) = self.read_available(l) {
                        self.close(l, e);
                    }
                }
            }
            if n < self.events.len() {
                return;
            }
        }
    }

    /// Opens link `l`: a socket to the target, connecting without waiting (epoll tells when
    /// the connect is done).
    fn open(&mut self, l: usize) {
        self.engine.connecting(l);
        match open_socket(self.target, self.datagram) {
            Ok(conn) => {
                let event = EpollEvent::new(
                    EpollFlags::EPOLLIN
                        | EpollFlags::EPOLLOUT
                        | EpollFlags::EPOLLRDHUP
                        | EpollFlags::EPOLLET,
                    l as u64,
                );
                let added = match &conn {
                    Conn::Tcp(s) => self.epoll.add(s, event),
                    Conn::Udp(s) => self.epoll.add(s, event),
                };
                if let Err(e) = added {
                    tracing::warn!("load: epoll: {e}");
                    self.engine.link_failed(l, now_us());
                    return;
                }
                let datagram = conn.is_datagram();
                self.slots[l] = Some(Slot {
                    conn,
                    connecting: !datagram,
                    blocked: false,
                });
                if datagram {
                    self.connected(l);
                }
            }
            Err(e) => {
                tracing::debug!("load: connecting to {}: {e}", self.target);
                self.engine.link_failed(l, now_us());
            }
        }
    }

    /// Link `l`'s connect finished (or failed).
    fn connected(&mut self, l: usize) {
        let Some(slot) = self.slots[l].as_mut() else {
            return;
        };
        if let Conn::Tcp(s) = &slot.conn {
            let failed = match s.take_error() {
                Ok(None) => None,
                Ok(Some(e)) | Err(e) => Some(e),
            };
            if let Some(e) = failed {
                tracing::debug!("load: connecting to {}: {e}", self.target);
                self.slots[l] = None;
                self.engine.link_failed(l, now_us());
                return;
            }
        }
        slot.connecting = false;
        let local = slot.conn.local();
        if let Err(e) = self.engine.link_up(l, &local, now_us()) {
            tracing::warn!("load: {e}");
            self.close(l, e);
        }
    }

    /// Link `l` is over: its socket closes and the engine's devices on it back off.
    fn close(&mut self, l: usize, e: LinkError) {
        tracing::debug!("load: connection {l}: {e}");
        self.slots[l] = None;
        self.engine.link_lost(l, e.loss, now_us());
    }

    /// Writes the pending bytes of every connection that has some.
    fn flush_all(&mut self) {
        for l in std::mem::take(&mut self.blocked) {
            if let Some(slot) = self.slots[l].as_mut() {
                slot.blocked = false;
            }
            self.flush(l);
        }
        for l in self.engine.take_ready() {
            self.flush(l);
        }
    }

    /// Writes link `l`'s pending bytes without waiting: what the socket does not take now
    /// stays pending for the next tick (a datagram it does not take is lost, and
    /// retransmitted).
    fn flush(&mut self, l: usize) {
        let Some(slot) = self.slots[l].as_mut().filter(|s| !s.connecting) else {
            return; // not connected: the bytes wait for the link (or are dropped with it)
        };
        let fd = slot.conn.fd();
        if slot.conn.is_datagram() {
            while let Some(d) = self.engine.next_datagram(l) {
                // A send error (no listener yet: ICMP) is what retransmission is for.
                let _ = socket::send(fd, &d, MsgFlags::MSG_DONTWAIT);
            }
            return;
        }
        loop {
            let wire = self.engine.wire(l);
            if wire.is_empty() {
                break;
            }
            let flags = MsgFlags::MSG_DONTWAIT | MsgFlags::MSG_NOSIGNAL;
            match socket::send(fd, wire, flags) {
                Ok(n) => self.engine.wrote(l, n),
                Err(Errno::EINTR) => {}
                Err(Errno::EAGAIN) => {
                    if !slot.blocked {
                        slot.blocked = true;
                        self.blocked.push(l);
                    }
                    break;
                }
                // The connection failed: epoll reports it, and the read finds out.
                Err(_) => break,
            }
        }
    }

    /// Reads what link `l`'s socket holds now, without waiting, and hands it to the engine
    /// with the time the kernel received it. Err: the connection is over.
    fn read_available(&mut self, l: usize) -> Result<(), LinkError> {
        let Some(slot) = self.slots[l].as_ref() else {
            return Ok(());
        };
        let (fd, datagram) = (slot.conn.fd(), slot.conn.is_datagram());
        loop {
            let (n, stamp) = match recv_stamped(fd, &mut self.buf, &mut self.cmsg) {
                Ok(r) => r,
                Err(Errno::EAGAIN) => return Ok(()),
                Err(Errno::EINTR) => continue,
                // An ICMP port unreachable for an earlier datagram: the device times out.
                Err(Errno::ECONNREFUSED) if datagram => continue,
                Err(e) => {
                    let loss = match e {
                        Errno::ECONNRESET | Errno::EPIPE | Errno::ECONNABORTED => LinkLoss::Reset,
                        Errno::ETIMEDOUT => LinkLoss::Timeout,
                        _ => LinkLoss::Other,
                    };
                    return Err(LinkError::new(loss, format!("reading: {e}")));
                }
            };
            if n == 0 && !datagram {
                return Err(LinkError::new(
                    LinkLoss::PeerClosed,
                    "the registrar closed the connection",
                ));
            }
            let now = now_us();
            let at = arrival_us(stamp, self.wall_ahead_us, now);
            if datagram {
                self.engine.receive_datagram_at(l, &self.buf[..n], at, now);
            } else {
                self.engine.receive_at(l, &self.buf[..n], at, now)?;
                if n < self.buf.len() {
                    // Drained: epoll reports what comes next (edge-triggered).
                    return Ok(());
                }
            }
        }
    }
}

/// A socket to `target`, its connect started (a datagram socket's is done at once), that
/// stamps what it receives with the kernel's receive time.
fn open_socket(target: SocketAddr, datagram: bool) -> std::io::Result<Conn> {
    use socket2::{Domain, Protocol, Socket, Type};
    let domain = Domain::for_address(target);
    let (ty, proto) = if datagram {
        (Type::DGRAM, Protocol::UDP)
    } else {
        (Type::STREAM, Protocol::TCP)
    };
    let s = Socket::new(domain, ty, Some(proto))?;
    s.set_nonblocking(true)?;
    if datagram {
        let _ = s.set_recv_buffer_size(65_536);
    } else {
        s.set_nodelay(true)?;
    }
    match s.connect(&target.into()) {
        Ok(()) => {}
        Err(e) if e.raw_os_error() == Some(Errno::EINPROGRESS as i32) => {}
        Err(e) => return Err(e),
    }
    let conn = if datagram {
        Conn::Udp(s.into())
    } else {
        Conn::Tcp(s.into())
    };
    let stamped = match &conn {
        Conn::Tcp(s) => socket::setsockopt(s, sockopt::ReceiveTimestampns, &true),
        Conn::Udp(s) => socket::setsockopt(s, sockopt::ReceiveTimestampns, &true),
    };
    if let Err(e) = stamped {
        tracing::debug!("load: no receive timestamps ({e}): answers are timed when read");
    }
    Ok(conn)
}

/// One `recvmsg` that does not wait: (bytes, the kernel's receive time in µs since the epoch).
fn recv_stamped(
    fd: RawFd,
    buf: &mut [u8],
    cmsg: &mut Vec<u8>,
) -> nix::Result<(usize, Option<u64>)> {
    let mut iov = [IoSliceMut::new(buf)];
    let m = socket::recvmsg::<()>(fd, &mut iov, Some(cmsg), MsgFlags::MSG_DONTWAIT)?;
    let stamp = m.cmsgs().find_map(|c| match c {
        ControlMessageOwned::ScmTimestampns(t) => {
            Some(t.tv_sec() as u64 * 1_000_000 + t.tv_nsec() as u64 / 1000)
        }
        _ => None,
    });
    Ok((m.bytes, stamp))
}

/// A kernel receive time (wall clock, µs) on the engine's clock, given how far the wall clock
/// is ahead of it; `now` when there is none or it is implausible.
fn arrival_us(stamp: Option<u64>, wall_ahead_us: i64, now: u64) -> u64 {
    let Some(stamp) = stamp else { return now };
    let at = stamp as i64 - wall_ahead_us;
    match u64::try_from(at) {
        Ok(at) if at <= now && now - at < 10_000_000 => at,
        _ => now,
    }
}
