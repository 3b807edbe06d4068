//! The load engine's runtime: one glommio executor per engine core, each driving the
//! [`Engine`] of its share of the devices. Per connection a reader task (socket -> engine) and
//! a writer task (engine -> socket, woken when the engine has bytes); per core a loop that
//! runs the devices that are due. Everything SIP, TLS and statistical happens in the engine.

use super::{now_us, IO_MEMORY};
use crate::auth::Signer;
use crate::load::engine::{Engine, Stats, Transport};
use crate::load::profile::Profile;
use futures_lite::{AsyncReadExt, AsyncWriteExt};
use glommio::channels::local_channel::{self, LocalSender};
use glommio::net::{TcpStream, UdpSocket};
use glommio::{LocalExecutorBuilder, Placement};
use std::cell::RefCell;
use std::net::SocketAddr;
use std::rc::Rc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

/// Bytes read from a connection at a time.
const READ_BUF: usize = 16 * 1024;
/// The longest the core loop sleeps (a device made due by an answer is run by the answer).
const MAX_SLEEP: Duration = Duration::from_millis(2);
/// The shortest: devices due within it go together at the next turn (fewer timer re-arms).
const MIN_SLEEP: Duration = Duration::from_millis(1);

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

type Wakers = Rc<RefCell<Vec<Option<LocalSender<()>>>>>;

/// Wakes the writer of every connection the engine has bytes for.
fn kick(engine: &RefCell<Engine>, wakers: &Wakers) {
    let ready = engine.borrow_mut().take_ready();
    let w = wakers.borrow();
    for l in ready {
        if let Some(tx) = w.get(l).and_then(Option::as_ref) {
            let _ = tx.try_send(());
        }
    }
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
    let n_links = e.links();
    let engine = Rc::new(RefCell::new(e));
    let wakers: Wakers = Rc::new(RefCell::new((0..n_links).map(|_| None).collect()));
    let end = plan.start_us + plan.profile.duration_s * 1_000_000;
    // Minting ahead gets at most this much CPU per loop (tokens cost ~20-50 µs each).
    const MINT_BUDGET_US: u64 = 500;
    let (mut sent, mut completed, mut errors) = (0, 0, 0);
    loop {
        let now = now_us();
        if now >= end {
            break;
        }
        let connects = {
            let mut e = engine.borrow_mut();
            e.run_due(now);
            e.mint_ahead(now, MINT_BUDGET_US);
            e.take_connects()
        };
        for l in connects {
            engine.borrow_mut().connecting(l);
            if plan.transport.is_datagram() {
                glommio::spawn_local(udp_link(engine.clone(), wakers.clone(), l, plan.target))
                    .detach();
            } else {
                glommio::spawn_local(link(engine.clone(), wakers.clone(), l, plan.target)).detach();
            }
        }
        kick(&engine, &wakers);
        {
            // Progress, as deltas of this core's counters.
            let e = engine.borrow();
            let s = e.stats();
            let done: u64 = s.responses.values().sum();
            live.sent.fetch_add(s.sent - sent, Ordering::Relaxed);
            live.completed
                .fetch_add(done - completed, Ordering::Relaxed);
            let errs = s.errors + s.timeouts;
            live.errors.fetch_add(errs - errors, Ordering::Relaxed);
            (sent, completed, errors) = (s.sent, done, errs);
        }
        let next = engine.borrow().next_wake().unwrap_or(u64::MAX);
        let wait = Duration::from_micros(next.saturating_sub(now_us()).min(end - now));
        glommio::timer::sleep(wait.clamp(MIN_SLEEP, MAX_SLEEP)).await;
    }
    if plan.profile.unregister_at_end {
        // Expires: 0 for every registered device; answers awaited for up to 5 s.
        let sent = engine.borrow_mut().unregister_all(now_us());
        kick(&engine, &wakers);
        let until = now_us() + 5_000_000;
        while sent > 0 && engine.borrow().in_flight() > 0 && now_us() < until {
            glommio::timer::sleep(Duration::from_millis(5)).await;
            kick(&engine, &wakers);
        }
    }
    let stats = engine.borrow().stats().clone();
    Ok((stats, thread_cpu_ns().saturating_sub(cpu0)))
}

/// One connection: connect, then a reader (this task) and a writer (woken by the engine).
async fn link(engine: Rc<RefCell<Engine>>, wakers: Wakers, l: usize, target: SocketAddr) {
    let stream = match TcpStream::connect(target).await {
        Ok(s) => s,
        Err(e) => {
            tracing::debug!("load: connect to {target} failed: {e}");
            engine.borrow_mut().link_failed(l, now_us());
            return;
        }
    };
    let _ = stream.set_nodelay(true);
    let local = stream
        .local_addr()
        .map_or_else(|_| "127.0.0.1:5062".to_string(), |a| a.to_string());
    if let Err(e) = engine.borrow_mut().link_up(l, &local, now_us()) {
        tracing::warn!("load: {e}");
        engine.borrow_mut().link_down(l, now_us());
        return;
    }
    // The devices waiting for this connection go now, not at the core loop's next turn.
    engine.borrow_mut().run_due(now_us());
    let (mut reader, mut writer) = futures_lite::io::split(stream);
    let (tx, rx) = local_channel::new_bounded::<()>(1);
    wakers.borrow_mut()[l] = Some(tx);
    let writer_engine = engine.clone();
    let writer_task = glommio::spawn_local(async move {
        let mut out = Vec::with_capacity(8192);
        while rx.recv().await.is_some() {
            writer_engine.borrow_mut().transmit(l, &mut out);
            if !out.is_empty() {
                if writer.write_all(&out).await.is_err() {
                    break;
                }
                out.clear();
            }
        }
    });
    kick(&engine, &wakers);
    let mut buf = vec![0u8; READ_BUF];
    loop {
        let n = match reader.read(&mut buf).await {
            Ok(0) | Err(_) => break,
            Ok(n) => n,
        };
        let r = engine.borrow_mut().receive(l, &buf[..n], now_us());
        kick(&engine, &wakers);
        if let Err(e) = r {
            tracing::debug!("load: connection {l}: {e}");
            break;
        }
    }
    wakers.borrow_mut()[l] = None;
    drop(writer_task);
    engine.borrow_mut().link_down(l, now_us());
}

/// One UDP socket "connected" to the target: datagrams out when woken, answers in.
async fn udp_link(engine: Rc<RefCell<Engine>>, wakers: Wakers, l: usize, target: SocketAddr) {
    let any: SocketAddr = if target.is_ipv4() {
        "0.0.0.0:0".parse().expect("an address")
    } else {
        "[::]:0".parse().expect("an address")
    };
    let mut socket = match UdpSocket::bind(any) {
        Ok(s) => s,
        Err(e) => {
            tracing::warn!("load: udp socket: {e}");
            engine.borrow_mut().link_down(l, now_us());
            return;
        }
    };
    if let Err(e) = socket.connect(target).await {
        tracing::debug!("load: udp connect to {target}: {e}");
        engine.borrow_mut().link_down(l, now_us());
        return;
    }
    socket.set_buffer_size(65_536);
    let local = socket
        .local_addr()
        .map_or_else(|_| "127.0.0.1:5062".to_string(), |a| a.to_string());
    if let Err(e) = engine.borrow_mut().link_up(l, &local, now_us()) {
        tracing::warn!("load: {e}");
        engine.borrow_mut().link_down(l, now_us());
        return;
    }
    // The devices waiting for this connection go now, not at the core loop's next turn.
    engine.borrow_mut().run_due(now_us());
    let socket = Rc::new(socket);
    let (tx, rx) = local_channel::new_bounded::<()>(1);
    wakers.borrow_mut()[l] = Some(tx);
    let (writer_engine, writer_socket) = (engine.clone(), socket.clone());
    // Held for the life of this task (which ends with the run): dropping it stops the writer.
    let _writer = glommio::spawn_local(async move {
        while rx.recv().await.is_some() {
            loop {
                let next = writer_engine.borrow_mut().next_datagram(l);
                let Some(d) = next else { break };
                // A send error (no listener yet: ICMP) is what retransmission is for.
                let _ = writer_socket.send(&d).await;
            }
        }
    });
    kick(&engine, &wakers);
    let mut buf = vec![0u8; 65_536];
    loop {
        match socket.recv(&mut buf).await {
            Ok(n) => {
                engine.borrow_mut().receive_datagram(l, &buf[..n], now_us());
                kick(&engine, &wakers);
            }
            Err(e) => {
                // ECONNREFUSED from an ICMP port unreachable: keep going, the device times out.
                tracing::debug!("load: udp receive: {e}");
                glommio::timer::sleep(Duration::from_millis(10)).await;
            }
        }
    }
}
