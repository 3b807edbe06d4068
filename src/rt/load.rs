//! The load engine's runtime: one glommio executor per engine core, each driving the
//! [`Engine`] of its share of the devices. Everything SIP, TLS and statistical happens in the
//! engine; this file moves bytes and keeps time.
//!
//! Each core runs a loop on a fixed tick ([`TICK_US`]). A turn reads the connections whose
//! answers come back within a tick, runs the devices that are due, and writes every
//! connection's pending bytes in one non-blocking send each. Each connection also has a task
//! that, while its connection is not read by the tick, waits on the socket (an io_uring peek)
//! and reads the answers the moment they arrive. Why: on a VM every wake-up of an idle
//! thread, and every send that wakes the registrar's, costs around ten microseconds, more than
//! a REGISTER's own work. A steady load on few connections is then served by one wake-up and
//! one send per connection per tick instead of one of each per REGISTER; many slow
//! connections still get a wake-up per answer, batched by io_uring when they come together.
//!
//! Answers read by the tick are stamped with their arrival time by the kernel
//! (`SO_TIMESTAMPNS`), not with the time of the read, so the tick does not add to latency; a
//! REGISTER sent up to one tick after its time counts from when it went out (see
//! [`crate::load::device::Timing::send_slack_us`]).

use super::{now_us, IO_MEMORY};
use crate::auth::Signer;
use crate::load::engine::{Engine, Stats, Transport};
use crate::load::profile::Profile;
use glommio::channels::local_channel::{self, LocalSender};
use glommio::net::{TcpStream, UdpSocket};
use glommio::{LocalExecutorBuilder, Placement};
use nix::errno::Errno;
use nix::sys::socket::{self, sockopt, ControlMessageOwned, MsgFlags};
use std::cell::RefCell;
use std::io::IoSliceMut;
use std::net::SocketAddr;
use std::os::fd::{AsRawFd, RawFd};
use std::rc::Rc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// The core loop's period (µs): sends go out, and quick connections are read, once per tick.
/// Also the send slack: a device due within a tick goes at the next one, without that
/// counting as latency.
pub const TICK_US: u64 = 4_000;
/// At the end of a run, how long the answers to REGISTERs already sent are awaited.
const DRAIN_US: u64 = 2_000_000;
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
    /// The run's start (µs, the registrar's clock): the ramp counts from here.
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
    pub sent: AtomicU64,
    pub completed: AtomicU64,
    pub errors: AtomicU64,
}

/// What a run produced.
#[derive(Debug)]
pub struct Outcome {
    pub stats: Stats,
    /// CPU seconds of the engine's executor threads.
    pub cpu_s: f64,
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
    let mut handles = Vec::new();
    for (k, &cpu) in cpus.iter().enumerate() {
        let k = k as u64;
        let first = p.devices * k / cores;
        let count = p.devices * (k + 1) / cores - first;
        let links = (p.connections * (k + 1) / cores - p.connections * k / cores).max(1);
        let plan = plan.clone();
        let live = live.clone();
        let h = LocalExecutorBuilder::new(Placement::Fixed(cpu))
            .name(&format!("regstorm-load-{k}"))
            .io_memory(IO_MEMORY)
            .spawn(move || async move { core(plan, first, count, links, cores, live).await })
            .map_err(|e| format!("starting load executor {k}: {e}"))?;
        handles.push(h);
    }
    let mut stats = Stats::default();
    let mut cpu_ns = 0;
    for h in handles {
        match h.join() {
            Ok(Ok((s, ns))) => {
                stats.merge(&s);
                cpu_ns += ns;
            }
            Ok(Err(e)) => return Err(e),
            Err(e) => return Err(format!("load executor failed: {e}")),
        }
    }
    Ok(Outcome {
        stats,
        cpu_s: cpu_ns as f64 / 1e9,
    })
}

/// How a connection is read.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Mode {
    /// Its task waits on the socket and reads answers as they arrive.
    Wait,
    /// The core loop reads it once per tick (its answers come back within one).
    Tick,
}

/// One open connection, as the core loop sees it. The socket itself is owned by the
/// connection's task; the descriptor is valid while the slot is.
struct Slot {
    fd: RawFd,
    datagram: bool,
    mode: Mode,
    /// Wakes the connection's task (to wait on the socket again, or to close).
    wake: LocalSender<()>,
    /// When bytes were last written.
    last_flush_us: u64,
    /// Bytes are left that the socket did not take: retried every tick.
    blocked: bool,
    /// Ticks in a row that found nothing to read (Tick mode).
    idle_ticks: u8,
    /// Closed by the loop (a read failed): the task tears it down.
    closed: Option<String>,
}

/// One core's engine and connections.
struct Core {
    engine: RefCell<Engine>,
    slots: RefCell<Vec<Option<Slot>>>,
    buf: RefCell<Vec<u8>>,
    /// Ancillary data (the receive timestamp) of one read.
    cmsg: RefCell<Vec<u8>>,
    target: SocketAddr,
}

async fn core(
    plan: Plan,
    first: u64,
    count: u64,
    links: u64,
    cores: u64,
    live: Arc<Live>,
) -> Result<(Stats, u64), String> {
    let cpu0 = thread_cpu_ns();
    let signer = (plan.signer)()?;
    let mut e = Engine::new(
        &plan.profile,
        plan.transport.clone(),
        signer,
        first,
        count,
        links,
        plan.start_us,
    );
    if plan.profile.rate > 0.0 {
        e.set_rate(plan.profile.rate / cores as f64);
    }
    e.set_send_slack(TICK_US);
    let n_links = e.links();
    let c = Rc::new(Core {
        engine: RefCell::new(e),
        slots: RefCell::new((0..n_links).map(|_| None).collect()),
        buf: RefCell::new(vec![0u8; READ_BUF]),
        cmsg: RefCell::new(nix::cmsg_space!(nix::sys::time::TimeSpec)),
        target: plan.target,
    });
    let datagram = plan.transport.is_datagram();
    let end = plan.start_us + plan.profile.duration_s * 1_000_000;
    // Minting ahead gets at most this much CPU per turn (tokens cost ~20-50 µs each).
    const MINT_BUDGET_US: u64 = 500;
    let (mut sent, mut completed, mut errors) = (0, 0, 0);
    let mut next_tick = now_us();
    let mut ticking = Vec::new();
    loop {
        let now = now_us();
        if now >= end {
            break;
        }
        read_ticking(&c, &mut ticking);
        let connects = {
            let mut e = c.engine.borrow_mut();
            let now = now_us();
            e.run_due(now);
            e.mint_ahead(now, MINT_BUDGET_US);
            e.take_connects()
        };
        for l in connects {
            c.engine.borrow_mut().connecting(l);
            glommio::spawn_local(link(c.clone(), l, datagram)).detach();
        }
        flush_all(&c);
        {
            // Progress, as deltas of this core's counters.
            let e = c.engine.borrow();
            let s = e.stats();
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
        glommio::timer::sleep(Duration::from_micros(next_tick.min(end) - now)).await;
    }
    // The REGISTERs already sent get their answers (for up to DRAIN_US): the registrar's
    // counts and the engine's then agree.
    c.engine.borrow_mut().finish();
    let until = now_us() + DRAIN_US;
    while c.engine.borrow().in_flight() > 0 && now_us() < until {
        glommio::timer::sleep(Duration::from_micros(TICK_US)).await;
        read_ticking(&c, &mut ticking);
        flush_all(&c);
    }
    if plan.profile.unregister_at_end {
        // Expires: 0 for every registered device; answers awaited for up to 5 s.
        let sent = c.engine.borrow_mut().unregister_all(now_us());
        flush_all(&c);
        let until = now_us() + 5_000_000;
        while sent > 0 && c.engine.borrow().in_flight() > 0 && now_us() < until {
            glommio::timer::sleep(Duration::from_micros(TICK_US)).await;
            read_ticking(&c, &mut ticking);
            flush_all(&c);
        }
    }
    let stats = c.engine.borrow().stats().clone();
    Ok((stats, thread_cpu_ns().saturating_sub(cpu0)))
}

/// Reads every connection the tick reads. One with nothing to read goes back to its task's
/// waiting; one that failed is handed to its task to close.
fn read_ticking(c: &Core, ticking: &mut Vec<usize>) {
    ticking.clear();
    ticking.extend(c.slots.borrow().iter().enumerate().filter_map(|(l, s)| {
        s.as_ref()
            .filter(|s| s.mode == Mode::Tick && s.closed.is_none())
            .map(|_| l)
    }));
    for &l in ticking.iter() {
        let r = read_available(c, l);
        let mut slots = c.slots.borrow_mut();
        let Some(slot) = slots[l].as_mut() else {
            continue;
        };
        match r {
            Ok(true) => {
                slot.idle_ticks = 0;
                continue;
            }
            // Two empty ticks: the answers no longer come within a tick. (One is not
            // enough: the connection's task may have read this tick's answers just before
            // handing the connection to the tick.)
            Ok(false) if slot.idle_ticks == 0 => {
                slot.idle_ticks = 1;
                continue;
            }
            Ok(false) => slot.mode = Mode::Wait,
            Err(e) => slot.closed = Some(e),
        }
        let _ = slot.wake.try_send(());
    }
}

/// Writes the pending bytes of every connection that has some.
fn flush_all(c: &Core) {
    let ready = c.engine.borrow_mut().take_ready();
    for l in ready {
        flush(c, l);
    }
    let blocked: Vec<usize> = c
        .slots
        .borrow()
        .iter()
        .enumerate()
        .filter_map(|(l, s)| s.as_ref().filter(|s| s.blocked).map(|_| l))
        .collect();
    for l in blocked {
        flush(c, l);
    }
}

/// Writes link `l`'s pending bytes without waiting: what the socket does not take now stays
/// pending for the next tick (a datagram it does not take is lost, and retransmitted).
fn flush(c: &Core, l: usize) {
    let mut slots = c.slots.borrow_mut();
    let Some(slot) = slots[l].as_mut() else {
        return; // not connected: the bytes wait for the link (or are dropped with it)
    };
    let mut e = c.engine.borrow_mut();
    if slot.datagram {
        while let Some(d) = e.next_datagram(l) {
            // A send error (no listener yet: ICMP) is what retransmission is for.
            let _ = socket::send(slot.fd, &d, MsgFlags::MSG_DONTWAIT);
        }
    } else {
        slot.blocked = false;
        loop {
            let wire = e.wire(l);
            if wire.is_empty() {
                break;
            }
            let flags = MsgFlags::MSG_DONTWAIT | MsgFlags::MSG_NOSIGNAL;
            match socket::send(slot.fd, wire, flags) {
                Ok(n) => e.wrote(l, n),
                Err(Errno::EINTR) => {}
                Err(Errno::EAGAIN) => {
                    slot.blocked = true;
                    break;
                }
                // The connection failed: its reader finds out and closes it.
                Err(_) => break,
            }
        }
    }
    slot.last_flush_us = now_us();
}

/// Reads what link `l`'s socket holds now, without waiting, and hands it to the engine with
/// the time the kernel received it. Ok(whether there was anything); Err: the connection is
/// over.
fn read_available(c: &Core, l: usize) -> Result<bool, String> {
    let (fd, datagram) = match c.slots.borrow()[l].as_ref() {
        Some(s) => (s.fd, s.datagram),
        None => return Ok(false),
    };
    let mut buf = c.buf.borrow_mut();
    let mut cmsg = c.cmsg.borrow_mut();
    let mut got = false;
    loop {
        let (n, stamp) = match recv_stamped(fd, &mut buf, &mut cmsg) {
            Ok(r) => r,
            Err(Errno::EAGAIN) => break,
            Err(Errno::EINTR) => continue,
            // An ICMP port unreachable for an earlier datagram: the device times out.
            Err(Errno::ECONNREFUSED) if datagram => break,
            Err(e) => return Err(format!("reading: {e}")),
        };
        if n == 0 && !datagram {
            return Err("the registrar closed the connection".into());
        }
        got = true;
        let at = arrival_us(stamp);
        let mut e = c.engine.borrow_mut();
        if datagram {
            e.receive_datagram(l, &buf[..n], at);
        } else {
            e.receive(l, &buf[..n], at)?;
            if n < buf.len() {
                break; // the socket is drained: no second call to learn it
            }
        }
    }
    Ok(got)
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

/// A kernel receive time (wall clock, µs) on the engine's clock ([`now_us`]); now when there
/// is none or it is implausible.
fn arrival_us(stamp: Option<u64>) -> u64 {
    let now = now_us();
    let Some(stamp) = stamp else { return now };
    let wall = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_micros() as u64);
    match wall.checked_sub(stamp) {
        Some(age) if age < 10_000_000 => now.saturating_sub(age),
        _ => now,
    }
}

/// Asks the kernel to stamp what `s` receives (`SO_TIMESTAMPNS`); without it, answers read by
/// the tick are timed when read.
fn stamp_receives(s: &impl std::os::fd::AsFd) {
    if let Err(e) = socket::setsockopt(s, sockopt::ReceiveTimestampns, &true) {
        tracing::debug!("load: no receive timestamps ({e}): answers are timed when read");
    }
}

/// A socket of either kind, held by its connection's task.
enum Sock {
    Tcp(TcpStream),
    Udp(UdpSocket),
}

impl Sock {
    /// A socket connected to `target` that stamps what it receives with the kernel's receive
    /// time. Made with socket2 so that the option is set through a safe descriptor before
    /// glommio takes the socket over.
    async fn open(target: SocketAddr, datagram: bool) -> std::io::Result<Sock> {
        use socket2::{Domain, Protocol, Socket, Type};
        let domain = Domain::for_address(target);
        let s = if datagram {
            let s = Socket::new(domain, Type::DGRAM, Some(Protocol::UDP))?;
            let _ = s.set_recv_buffer_size(65_536);
            let s = std::net::UdpSocket::from(s);
            stamp_receives(&s);
            Socket::from(s)
        } else {
            let s = Socket::new(domain, Type::STREAM, Some(Protocol::TCP))?;
            s.set_nodelay(true)?;
            let s = std::net::TcpStream::from(s);
            stamp_receives(&s);
            Socket::from(s)
        };
        s.set_nonblocking(true)?;
        match s.connect(&target.into()) {
            Ok(()) => {}
            Err(e) if e.raw_os_error() == Some(Errno::EINPROGRESS as i32) => {}
            Err(e) => return Err(e),
        }
        if datagram {
            return Ok(Sock::Udp(UdpSocket::from(s)));
        }
        let mut stream = TcpStream::from(s);
        // An empty send waits (io_uring poll) until the connection is made, and fails as the
        // connection does.
        futures_lite::AsyncWriteExt::write(&mut stream, &[]).await?;
        Ok(Sock::Tcp(stream))
    }

    fn fd(&self) -> RawFd {
        match self {
            Sock::Tcp(s) => s.as_raw_fd(),
            Sock::Udp(s) => s.as_raw_fd(),
        }
    }

    fn local(&self) -> String {
        let a = match self {
            Sock::Tcp(s) => s.local_addr(),
            Sock::Udp(s) => s.local_addr(),
        };
        a.map_or_else(|_| "127.0.0.1:5062".to_string(), |a| a.to_string())
    }

    /// Waits until there is something to read (or the connection ended: Ok(0) on a stream).
    async fn readable(&self) -> std::io::Result<usize> {
        let mut one = [0u8; 1];
        let r = match self {
            Sock::Tcp(s) => s.peek(&mut one).await,
            Sock::Udp(s) => s.peek(&mut one).await,
        };
        r.map_err(std::io::Error::from)
    }
}

/// One connection's task: connect, then read the socket whenever the tick does not.
async fn link(c: Rc<Core>, l: usize, datagram: bool) {
    let sock = match Sock::open(c.target, datagram).await {
        Ok(s) => s,
        Err(e) => {
            tracing::debug!("load: connecting to {}: {e}", c.target);
            c.engine.borrow_mut().link_failed(l, now_us());
            return;
        }
    };
    let fd = sock.fd();
    if let Err(e) = c.engine.borrow_mut().link_up(l, &sock.local(), now_us()) {
        tracing::warn!("load: {e}");
        c.engine.borrow_mut().link_down(l, now_us());
        return;
    }
    let (wake, woken) = local_channel::new_bounded::<()>(1);
    c.slots.borrow_mut()[l] = Some(Slot {
        fd,
        datagram,
        mode: Mode::Wait,
        wake,
        last_flush_us: 0,
        blocked: false,
        idle_ticks: 0,
        closed: None,
    });
    // The devices waiting for this connection go now, not at the loop's next turn.
    c.engine.borrow_mut().run_due(now_us());
    flush(&c, l);
    let reason = loop {
        let (mode, closed) = match c.slots.borrow()[l].as_ref() {
            Some(s) => (s.mode, s.closed.clone()),
            None => break "gone".to_string(),
        };
        if let Some(reason) = closed {
            break reason;
        }
        if mode == Mode::Tick {
            // The loop reads it; it wakes this task to wait again, or to close.
            if woken.recv().await.is_none() {
                break "stopped".to_string();
            }
            continue;
        }
        match sock.readable().await {
            Ok(0) if !datagram => break "the registrar closed the connection".to_string(),
            Ok(_) => {}
            Err(e) if datagram => {
                // ECONNREFUSED from an ICMP port unreachable: keep going, the device times out.
                tracing::debug!("load: udp receive: {e}");
                glommio::timer::sleep(Duration::from_millis(10)).await;
                continue;
            }
            Err(e) => break format!("reading: {e}"),
        }
        let sent_us = c.slots.borrow()[l].as_ref().map_or(0, |s| s.last_flush_us);
        if let Err(e) = read_available(&c, l) {
            break e;
        }
        // An answer may have made a device send at once (a retry, reregister_s = 0).
        flush(&c, l);
        // Answered within a tick of the last write: the tick reads this connection from now.
        if now_us().saturating_sub(sent_us) < TICK_US {
            if let Some(s) = c.slots.borrow_mut()[l].as_mut() {
                s.mode = Mode::Tick;
                s.idle_ticks = 0;
            }
        }
    };
    tracing::debug!("load: connection {l}: {reason}");
    c.slots.borrow_mut()[l] = None;
    c.engine.borrow_mut().link_down(l, now_us());
    drop(sock);
}
