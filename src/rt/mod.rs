//! The runtime: the only code that knows glommio. One executor per core, each binding every
//! configured listener with SO_REUSEPORT (glommio sets it) so the kernel spreads connections
//! and datagrams over the cores; per connection a task that moves bytes between the socket and
//! a sans-IO [`Session`]; per core a low-priority control task for purging, statistics,
//! reloads and stopping. The registrar's decisions, TLS state and framing all live outside.

mod admin;
mod conn;
pub mod load;

use crate::admin::{CoreMetrics, Metrics};
use crate::auth::{CacheBound, KeySet, Verifier};
use crate::config::{Config, ConfigError, ListenerKind};
use crate::registrar::{Bindings, Directory, Registrar};
use glommio::net::{TcpListener, UdpSocket};
use glommio::{LocalExecutorBuilder, Placement};
use rustls::ServerConfig;
use std::cell::{Cell, RefCell};
use std::net::SocketAddr;
use std::rc::Rc;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{mpsc, Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// io_uring registered memory per executor. Network I/O barely uses it; kept small so several
/// executors (registrar and load engine in one process) fit the 8 MiB locked-memory limit.
pub const IO_MEMORY: usize = 512 * 1024;
/// Submission queue depth per ring.
const RING_DEPTH: usize = 256;
/// Lock stripes of the binding table (a power of two, well above the core count).
const BINDING_STRIPES: usize = 64;
/// How often each core's control task runs: reloads, stop, statistics, the idle/handshake
/// sweep, overload. Every wake-up of an idle executor costs tens of microseconds on a VM, so
/// not more often than this.
const TICK: Duration = Duration::from_millis(500);
/// Lateness of the admission probe beyond which the excess is not counted against peers'
/// deadlines: a registrar that is behind does not close connections for its own delay.
const EXCUSED_AFTER: Duration = Duration::from_millis(20);
/// Longest wait for in-flight answers when stopping.
const DRAIN: Duration = Duration::from_secs(3);

/// Milliseconds since the epoch, as the registrar sees them (`Date` headers, binding expiry,
/// connection deadlines): the wall clock read once, then advanced by the monotonic clock, so
/// a wall-clock step (NTP, a resumed VM) neither closes every connection at once nor stops
/// the timeouts. Restarting picks up the wall clock again.
pub fn now_ms() -> u64 {
    now_us() / 1000
}

/// [`now_ms`] in microseconds (the load engine's clock: latencies are tens of µs).
pub fn now_us() -> u64 {
    use std::sync::OnceLock;
    use std::time::Instant;
    static ANCHOR: OnceLock<(Instant, u64)> = OnceLock::new();
    let (at, wall) = ANCHOR.get_or_init(|| {
        let wall = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_micros() as u64);
        (Instant::now(), wall)
    });
    wall + at.elapsed().as_micros() as u64
}

/// Why the server did not start.
#[derive(Debug)]
pub enum StartError {
    /// The configuration or a file it names (exit status 2).
    Config(ConfigError),
    /// The machine refused (io_uring, a port in use, ...): exit status 1.
    Runtime(String),
}

impl std::fmt::Display for StartError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            StartError::Config(e) => e.fmt(f),
            StartError::Runtime(e) => f.write_str(e),
        }
    }
}

impl std::error::Error for StartError {}

/// What SIGHUP reloads: certificates, the key set and the directory.
#[derive(Clone, Debug)]
struct Reloadable {
    /// Per listener index: its TLS configuration (None for plaintext listeners).
    tls: Vec<Option<Arc<ServerConfig>>>,
    keys: Arc<KeySet>,
    directory: Option<Directory>,
}

impl Reloadable {
    fn load(cfg: &Config) -> Result<Self, ConfigError> {
        let mut tls = Vec::with_capacity(cfg.listeners.len());
        for (i, l) in cfg.listeners.iter().enumerate() {
            tls.push(if l.kind.is_tls() {
                Some(crate::tls::server_config(l, i, &cfg.file)?)
            } else {
                None
            });
        }
        let keys = Arc::new(cfg.load_keys()?);
        let directory = match &cfg.directory {
            Some(d) => Some(Directory::load(d)?),
            None => None,
        };
        Ok(Reloadable {
            tls,
            keys,
            directory,
        })
    }
}

/// State every core shares.
#[derive(Debug)]
pub(crate) struct Shared {
    pub(crate) cfg: Config,
    cores: usize,
    /// Open connections per listener index, all cores together.
    pub(crate) open: Vec<AtomicUsize>,
    pub(crate) metrics: Arc<Metrics>,
    /// Every binding, shared by the cores (lock-striped: results/shards-20261127).
    pub(crate) bindings: Arc<Bindings>,
    /// `auth.cache_entries`: the bound of every core's verified-token cache together.
    token_cache: Arc<CacheBound>,
    current: Mutex<Arc<Reloadable>>,
    generation: AtomicU64,
    /// The generation each core has applied.
    applied: Vec<AtomicU64>,
    stop: AtomicBool,
    /// Connection numbers, unique in the process (0 is "no connection": UDP).
    next_conn: AtomicU64,
    /// Cores whose executor is running.
    running: AtomicUsize,
    /// Woken when an executor ends (`serve`'s signal loop).
    on_exit: Mutex<Option<signal_hook::iterator::Handle>>,
}

/// Counts a core out when its executor's main task ends, however it ends.
struct Running(Arc<Shared>);

impl Drop for Running {
    fn drop(&mut self) {
        self.0.running.fetch_sub(1, Ordering::AcqRel);
        if !self.0.stop.load(Ordering::Acquire) {
            if let Some(h) = &*self.0.on_exit.lock().unwrap_or_else(|e| e.into_inner()) {
                h.close();
            }
        }
    }
}

/// One core's state; lives on its executor only.
pub(crate) struct Core {
    pub(crate) index: usize,
    pub(crate) shared: Arc<Shared>,
    pub(crate) registrar: RefCell<Registrar>,
    /// The TLS configurations this core hands to new connections.
    pub(crate) tls: RefCell<Vec<Option<Arc<ServerConfig>>>>,
    /// Answers being written right now (a stop waits for them).
    pub(crate) in_flight: Cell<usize>,
    /// This core's stream connections, for the sweeper that enforces their deadlines.
    pub(crate) watched: RefCell<std::collections::HashMap<u64, Rc<conn::Watch>>>,
    /// Milliseconds this core ran late beyond [`EXCUSED_AFTER`], added up: deadlines are
    /// pushed back by what accrued while they ran, so only a peer's own silence expires it.
    pub(crate) excused_ms: Cell<u64>,
    pub(crate) stopping: Cell<bool>,
    /// The one read buffer of this core's stream connections: a connection reads into it only
    /// once its socket has something, and hands the bytes on before it next waits, so an idle
    /// connection holds no read buffer of its own.
    pub(crate) read_buf: RefCell<Vec<u8>>,
}

impl Core {
    pub(crate) fn metrics(&self) -> &CoreMetrics {
        self.shared.metrics.core(self.index)
    }

    pub(crate) fn next_conn(&self) -> u64 {
        self.shared.next_conn.fetch_add(1, Ordering::Relaxed)
    }
}

/// A running registrar.
#[derive(Debug)]
pub struct Server {
    shared: Arc<Shared>,
    executors: Vec<glommio::ExecutorJoinHandle<()>>,
    /// The address each listener is bound to, in configuration order (port 0 resolved).
    pub local: Vec<(ListenerKind, SocketAddr)>,
    /// The admin address, when configured.
    pub admin: Option<SocketAddr>,
}

/// The CPUs this process may run on (its affinity mask: taskset, a cgroup cpuset).
pub fn allowed_cpus() -> Vec<usize> {
    use nix::sched::{sched_getaffinity, CpuSet};
    match sched_getaffinity(nix::unistd::Pid::from_raw(0)) {
        Ok(set) => (0..CpuSet::count())
            .filter(|&c| set.is_set(c).unwrap_or(false))
            .collect(),
        Err(_) => (0..std::thread::available_parallelism().map_or(1, |n| n.get())).collect(),
    }
}

/// How many executors: `cores`, or every CPU the process may use when 0.
fn core_count(cfg: &Config, allowed: &[usize]) -> usize {
    match cfg.registrar.cores {
        0 => allowed.len().max(1),
        n => n as usize,
    }
}

/// Raises the open-files soft limit to the hard limit; says when connections cannot fit.
fn raise_nofile(cfg: &Config) -> Result<(), StartError> {
    let (soft, hard) = rlimit::Resource::NOFILE
        .get()
        .map_err(|e| StartError::Runtime(format!("reading the open-files limit: {e}")))?;
    if soft < hard {
        let _ = rlimit::Resource::NOFILE.set(hard, hard);
    }
    let need = cfg.limits.max_connections as u64 + 64;
    if need > hard {
        tracing::warn!(
            "limits.max_connections is {} but the open-files hard limit is {hard}: \
             connections beyond about {} will be refused",
            cfg.limits.max_connections,
            hard.saturating_sub(64)
        );
    }
    Ok(())
}

impl Server {
    /// Loads every file the configuration names, starts the executors and binds the
    /// listeners; returns once every core is serving.
    pub fn start(cfg: Config) -> Result<Server, StartError> {
        let reloadable = Reloadable::load(&cfg).map_err(StartError::Config)?;
        raise_nofile(&cfg)?;
        let allowed = allowed_cpus();
        let cores = core_count(&cfg, &allowed);
        let shared = Arc::new(Shared {
            open: cfg.listeners.iter().map(|_| AtomicUsize::new(0)).collect(),
            metrics: Arc::new(Metrics::new(cores)),
            bindings: Arc::new(Bindings::new(BINDING_STRIPES)),
            token_cache: CacheBound::new(cfg.auth.cache_entries),
            current: Mutex::new(Arc::new(reloadable)),
            generation: AtomicU64::new(0),
            applied: (0..cores).map(|_| AtomicU64::new(0)).collect(),
            stop: AtomicBool::new(false),
            next_conn: AtomicU64::new(1),
            running: AtomicUsize::new(0),
            on_exit: Mutex::new(None),
            cores,
            cfg,
        });
        let mut executors = Vec::with_capacity(cores);
        // Core 0 binds first so that port 0 resolves once; the others bind the same ports.
        let mut addrs: Vec<SocketAddr> = shared.cfg.listeners.iter().map(|l| l.addr).collect();
        let mut local = Vec::new();
        let mut admin = None;
        for index in 0..cores {
            let (tx, rx) = mpsc::channel::<Result<Vec<SocketAddr>, ConfigError>>();
            let s = shared.clone();
            let bind_to = addrs.clone();
            // Executor i on the i-th allowed CPU (wrapping when there are more cores than CPUs).
            let cpu = allowed
                .get(index % allowed.len().max(1))
                .copied()
                .unwrap_or(0);
            let handle = LocalExecutorBuilder::new(Placement::Fixed(cpu))
                .name(&format!("regstorm-{index}"))
                .io_memory(IO_MEMORY)
                .ring_depth(RING_DEPTH)
                .spawn(move || async move { run_core(index, s, bind_to, tx).await })
                .map_err(|e| StartError::Runtime(format!("starting executor {index}: {e}")))?;
            match rx.recv() {
                Ok(Ok(bound)) => {
                    if index == 0 {
                        let n = shared.cfg.listeners.len();
                        admin = bound.get(n).copied();
                        addrs = bound[..n].to_vec();
                        local = shared
                            .cfg
                            .listeners
                            .iter()
                            .zip(&bound)
                            .map(|(l, a)| (l.kind, *a))
                            .collect();
                    }
                    executors.push(handle);
                }
                Ok(Err(e)) => {
                    shared.stop.store(true, Ordering::Relaxed);
                    let _ = handle.join();
                    for h in executors {
                        let _ = h.join();
                    }
                    // An address that cannot be bound is the configuration's fault (exit 2).
                    return Err(StartError::Config(e));
                }
                Err(_) => {
                    // The executor never ran: its error (io_uring, memlock) is in the join.
                    let reason = match handle.join() {
                        Err(e) => io_uring_hint(&e.to_string()),
                        Ok(()) => "executor stopped before serving".to_string(),
                    };
                    shared.stop.store(true, Ordering::Relaxed);
                    for h in executors {
                        let _ = h.join();
                    }
                    return Err(StartError::Runtime(format!("executor {index}: {reason}")));
                }
            }
        }
        for (kind, addr) in &local {
            tracing::info!("listening: {} on {addr} ({cores} cores)", kind.as_str());
        }
        if let Some(a) = admin {
            tracing::info!("admin: http://{a}/metrics");
        }
        Ok(Server {
            shared,
            executors,
            local,
            admin,
        })
    }

    /// The bound address of the first listener of `kind`.
    pub fn addr(&self, kind: ListenerKind) -> Option<SocketAddr> {
        self.local.iter().find(|(k, _)| *k == kind).map(|(_, a)| *a)
    }

    /// Re-reads certificates, the key set and the directory; on an error nothing changes.
    /// Returns once every core uses the new material (or after 3 s).
    pub fn reload(&self) -> Result<(), ConfigError> {
        let fresh = Reloadable::load(&self.shared.cfg)?;
        *self
            .shared
            .current
            .lock()
            .unwrap_or_else(|e| e.into_inner()) = Arc::new(fresh);
        let generation = self.shared.generation.fetch_add(1, Ordering::AcqRel) + 1;
        let deadline = std::time::Instant::now() + Duration::from_secs(3);
        while std::time::Instant::now() < deadline
            && self
                .shared
                .applied
                .iter()
                .any(|a| a.load(Ordering::Acquire) < generation)
        {
            std::thread::sleep(Duration::from_millis(10));
        }
        self.shared.metrics.core(0).reloaded();
        tracing::info!("reloaded certificates, keys and directory (generation {generation})");
        Ok(())
    }

    /// Executors still serving (fewer than started means one failed).
    pub fn running(&self) -> usize {
        self.shared.running.load(Ordering::Acquire)
    }

    /// Bindings registered now, all cores together.
    pub fn bindings(&self) -> usize {
        self.shared.bindings.len()
    }

    /// The counters behind `/metrics`.
    pub fn metrics(&self) -> &Arc<Metrics> {
        &self.shared.metrics
    }

    /// Whether a stop was asked for.
    pub fn stopping(&self) -> bool {
        self.shared.stop.load(Ordering::Acquire)
    }

    /// Asks every core to stop (what SIGTERM does); [`Server::stop`] then waits.
    pub fn request_stop(&self) {
        self.shared.stop.store(true, Ordering::Release);
    }

    /// Stops accepting, lets answers in flight finish (at most a few seconds), and waits for
    /// every executor.
    pub fn stop(self) {
        self.shared.stop.store(true, Ordering::Release);
        for h in self.executors {
            if let Err(e) = h.join() {
                tracing::warn!("executor ended with an error: {e}");
            }
        }
    }
}

fn io_uring_hint(e: &str) -> String {
    format!(
        "cannot start the io_uring executor ({e}); regstorm needs Linux 5.8+ with io_uring \
         enabled (sysctl kernel.io_uring_disabled=0) and a memlock limit of at least 512 KiB"
    )
}

async fn run_core(
    index: usize,
    shared: Arc<Shared>,
    addrs: Vec<SocketAddr>,
    ready: mpsc::Sender<Result<Vec<SocketAddr>, ConfigError>>,
) {
    shared.running.fetch_add(1, Ordering::AcqRel);
    let _running = Running(shared.clone());
    let current = shared
        .current
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .clone();
    let cfg = &shared.cfg;
    let verifier = Verifier::sharing(
        current.keys.clone(),
        cfg.auth.policy.clone(),
        shared.token_cache.clone(),
    );
    let mut registrar =
        Registrar::with_bindings(cfg.registrar.clone(), verifier, shared.bindings.clone());
    registrar.set_directory(current.directory.clone());
    let admission = registrar.admission_config();
    registrar.set_admission(crate::registrar::Admission::new(
        admission,
        crate::mix::splitmix64(index as u64 + 1),
    ));
    if let Ok(host) = std::fs::read_to_string("/proc/sys/kernel/hostname") {
        registrar.set_host_name(host.trim());
    }
    let core = Rc::new(Core {
        index,
        shared: shared.clone(),
        registrar: RefCell::new(registrar),
        tls: RefCell::new(current.tls.clone()),
        in_flight: Cell::new(0),
        watched: RefCell::new(std::collections::HashMap::new()),
        excused_ms: Cell::new(0),
        stopping: Cell::new(false),
        read_buf: RefCell::new(vec![0u8; conn::READ_BUF]),
    });
    // Bind everything before saying ready.
    let mut bound = Vec::with_capacity(addrs.len());
    let mut tcp = Vec::new();
    let mut udp = Vec::new();
    for (li, (l, addr)) in cfg.listeners.iter().zip(&addrs).enumerate() {
        let what = |e: &dyn std::fmt::Display| ConfigError {
            line: None,
            file: cfg.file.display().to_string(),
            key: format!("listener[{li}].addr"),
            reason: format!("cannot bind {addr}: {e}"),
        };
        if l.kind == ListenerKind::Udp {
            match UdpSocket::bind(addr) {
                Ok(s) => {
                    bound.push(s.local_addr().unwrap_or(*addr));
                    udp.push((li, s));
                }
                Err(e) => {
                    let _ = ready.send(Err(what(&e)));
                    return;
                }
            }
        } else {
            match TcpListener::bind(addr) {
                Ok(s) => {
                    let at = s.local_addr().unwrap_or(*addr);
                    bound.push(at);
                    tcp.push((li, s));
                    // More sockets in the port's SO_REUSEPORT group, so that a fleet
                    // connecting at once waits in the kernel's accept queues instead of
                    // overflowing them (each overflow is a SYN retransmitted a second later:
                    // 5,790 of 9,000 devices in an on-premises storm). glommio 0.9 listens
                    // with a backlog of 1,024 and offers no safe way to change it.
                    for _ in 1..listen_sockets(shared.cfg.limits.max_connections, shared.cores) {
                        match TcpListener::bind(at) {
                            Ok(s) => tcp.push((li, s)),
                            Err(e) => {
                                let _ = ready.send(Err(what(&e)));
                                return;
                            }
                        }
                    }
                }
                Err(e) => {
                    let _ = ready.send(Err(what(&e)));
                    return;
                }
            }
        }
    }
    let mut admin_bound = None;
    if index == 0 {
        if let Some(addr) = cfg.admin {
            match TcpListener::bind(addr) {
                Ok(l) => {
                    // Reported after the listeners' addresses.
                    admin_bound = Some(l.local_addr().unwrap_or(addr));
                    glommio::spawn_local(admin::serve(core.clone(), l)).detach();
                }
                Err(e) => {
                    let _ = ready.send(Err(ConfigError {
                        line: None,
                        file: cfg.file.display().to_string(),
                        key: "admin.addr".into(),
                        reason: format!("cannot bind {addr}: {e}"),
                    }));
                    return;
                }
            }
        }
    }
    for (li, listener) in tcp {
        glommio::spawn_local(conn::accept_loop(core.clone(), li, listener)).detach();
    }
    for (li, socket) in udp {
        glommio::spawn_local(conn::udp_loop(core.clone(), li, socket)).detach();
    }
    bound.extend(admin_bound);
    let _ = ready.send(Ok(bound));
    glommio::spawn_local(probe(core.clone())).detach();
    if index == 0 {
        // Expired bindings go once a second (lookups drop them too), from a task queue that
        // yields to connections: a burst of expiries never delays answers. One core is enough.
        let low = glommio::executor().create_task_queue(
            glommio::Shares::Static(10),
            glommio::Latency::NotImportant,
            "purge",
        );
        let c = core.clone();
        let _ = glommio::spawn_local_into(
            async move {
                while !c.stopping.get() {
                    glommio::timer::sleep(Duration::from_secs(1)).await;
                    let purged = c.shared.bindings.purge(now_ms() / 1000);
                    if purged > 0 {
                        tracing::debug!("{purged} bindings expired");
                    }
                }
            },
            low,
        )
        .map(|t| t.detach());
    }
    control(core).await;
}

/// The per-core control loop: reloads, purge, stop.
async fn control(core: Rc<Core>) {
    let shared = core.shared.clone();
    let mut applied = 0;
    loop {
        glommio::timer::sleep(TICK).await;
        if shared.stop.load(Ordering::Acquire) {
            break;
        }
        let generation = shared.generation.load(Ordering::Acquire);
        if generation != applied {
            let fresh = shared
                .current
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .clone();
            {
                let mut reg = core.registrar.borrow_mut();
                reg.verifier().set_keys(fresh.keys.clone());
                reg.set_directory(fresh.directory.clone());
            }
            *core.tls.borrow_mut() = fresh.tls.clone();
            applied = generation;
            shared.applied[core.index].store(generation, Ordering::Release);
        }
        {
            let mut reg = core.registrar.borrow_mut();
            let v = reg.verifier();
            let (stats, cache) = (v.stats(), v.cache().stats());
            let entries = v.cache().len() as u64;
            let m = core.metrics();
            m.set_token_stats(cache.hits, cache.misses, stats.verifications);
            m.set_overload_rejections(stats.shed);
            m.set_token_cache_entries(entries);
            m.set_admission(&reg.admission().stats());
        }
        conn::sweep(&core, now_ms());
    }
    // Stop: no new connections or datagrams are taken; answers being written get a moment.
    core.stopping.set(true);
    let until = std::time::Instant::now() + DRAIN;
    while core.in_flight.get() > 0 && std::time::Instant::now() < until {
        glommio::timer::sleep(Duration::from_millis(10)).await;
    }
}

/// The admission probe: a task in the same run queue as the connections, so how late its
/// timer is served is how long work waits on this core (the queueing delay). Each tick feeds
/// the delay and the time to the sans-IO [`crate::registrar::Admission`], which refills the
/// verification and accept budgets and adjusts them to the delay; lateness beyond
/// [`EXCUSED_AFTER`] is added to the core's excused time, which the deadline sweep honours.
async fn probe(core: Rc<Core>) {
    let mut wait = Duration::from_millis(10);
    while !core.stopping.get() {
        let asked = std::time::Instant::now();
        glommio::timer::sleep(wait).await;
        let late = asked.elapsed().saturating_sub(wait);
        if late > EXCUSED_AFTER {
            let excess = (late - EXCUSED_AFTER).as_millis() as u64;
            core.excused_ms.set(core.excused_ms.get() + excess);
        }
        let mut reg = core.registrar.borrow_mut();
        let a = reg.admission();
        a.on_tick(now_us(), late.as_micros() as u64);
        wait = Duration::from_micros(a.next_tick_in_us());
        core.metrics().set_queue_delay_us(a.delay_us());
    }
}

/// Listening sockets per core for a stream listener: enough that the accept queues of all
/// cores (1,024 each, glommio's fixed backlog) hold `max_connections` arriving at once, at
/// most 16 a core.
fn listen_sockets(max_connections: usize, cores: usize) -> usize {
    max_connections.div_ceil(1024 * cores.max(1)).clamp(1, 16)
}

/// What `serve --check` does: every file the configuration names is read and used as start-up
/// would (certificates with their keys, the CA, the key set, the directory).
pub fn check(cfg: &Config) -> Result<(), ConfigError> {
    Reloadable::load(cfg).map(|_| ())
}

/// `regstorm serve`: starts the registrar and runs until SIGTERM or SIGINT (stop: finish what
/// is in flight, exit 0); SIGHUP reloads certificates, keys and the directory.
pub fn serve(cfg: Config) -> Result<(), StartError> {
    use signal_hook::consts::{SIGHUP, SIGINT, SIGTERM};
    // Signals are taken before the executors start so that none of them gets one first.
    let mut signals = signal_hook::iterator::Signals::new([SIGTERM, SIGINT, SIGHUP])
        .map_err(|e| StartError::Runtime(format!("installing signal handlers: {e}")))?;
    let server = Server::start(cfg)?;
    // An executor that ends on its own (it failed) closes the signal stream to wake us.
    *server
        .shared
        .on_exit
        .lock()
        .unwrap_or_else(|e| e.into_inner()) = Some(signals.handle());
    let cores = server.shared.cores;
    for sig in signals.forever() {
        match sig {
            SIGHUP => {
                if let Err(e) = server.reload() {
                    tracing::error!("reload refused, still serving the previous material: {e}");
                }
            }
            _ => {
                tracing::info!("stopping (signal {sig})");
                server.stop();
                return Ok(());
            }
        }
    }
    // The stream ended without a stop signal: an executor failed.
    let failed = server.running() < cores;
    server.request_stop();
    server.stop();
    if failed {
        Err(StartError::Runtime("an executor failed; stopped".into()))
    } else {
        Ok(())
    }
}
