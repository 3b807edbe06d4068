//! Binding-table shard design, measured: which layout should the registrar's binding table use
//! across its per-core executors?
//!
//! (a) `striped`: lock-striped shards shared by all cores, `Arc<[Mutex<Shard>; 64]>`, stripe =
//!     hash(AOR) % 64; a REGISTER locks its stripe for the check-and-update, on whichever core
//!     holds the connection.
//! (b) `owned`: shared-nothing, one shard per core, AOR owner = hash(AOR) % cores; a REGISTER for
//!     another core's AOR is sent over glommio's channel mesh to the owner, which applies it and
//!     sends the outcome back (the answer is written by the core holding the connection).
//!     `b` sends one message per forwarded operation (the K in-flight connections overlap them);
//!     `b-batch` gathers the forwarded operations of one scheduler round into one message per
//!     peer, answered by one message of outcomes.
//!
//! Same synthetic load for both: `--executors` executors pinned to CPUs 0, 1, ... each run
//! `--conns` "connection" tasks issuing operations back to back, `--ops` operations in all. An
//! operation takes the next AOR (`sip:1xxxxxx@10.10.10.1`, uniform over a pool of `--pool`),
//! looks it up, compares a u32 CSeq and inserts or updates a 100-byte value, then yields (the
//! await of the connection's next read). Both designs hash the AOR the same way and size their
//! tables the same (2^21 buckets in all for a pool of 1,000,000), and the final number of
//! distinct AORs is printed as a check that they did the same work. Each run stops at
//! `--limit-s` seconds (default 25) whatever is left; `cut=1` in the output says it did.
//!
//! Printed: wall time between the start and end barriers, ops/s, the process's CPU time over
//! that interval (utime + stime from /proc/self/stat, 10 ms ticks) per operation, split into
//! user and system, the voluntary context switches of the process's threads (executors parking,
//! threads sleeping on a contended lock), and for (b) the fraction of operations forwarded.
//!
//! `--active 1` puts every connection on executor 0 (MRA: many devices behind few connections
//! that landed on one core); the other executors then only own their shard ((b)) or idle ((a)).
//!
//! glommio is used directly here: the crate's own code keeps glommio in src/rt/ only; this example is a measurement, not part of the registrar. Executors are built
//! like src/rt's: `.io_memory(512 KiB)` (the 8 MiB memlock limit), ring depth 256, default
//! preempt timer and no spinning before parking.
//!
//!     cargo run --release --example shard_choice -- --design a --executors 2
//!     cargo run --release --example shard_choice -- --design b --executors 2 --ops 2000000
//!     cargo run --release --example shard_choice -- --design b-batch --executors 2
//!     cargo run --release --example shard_choice -- --design a --executors 1   # baseline

use futures_lite::future::{poll_fn, yield_now};
use glommio::channels::channel_mesh::{MeshBuilder, Senders};
use glommio::{LocalExecutorBuilder, Placement, Task};
use std::cell::{Cell, RefCell};
use std::collections::HashMap;
use std::io::Write;
use std::rc::Rc;
use std::sync::{Arc, Barrier, Mutex};
use std::task::{Poll, Waker};
use std::time::{Duration, Instant};

#[global_allocator]
static GLOBAL: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

/// Stripes of design (a).
const STRIPES: usize = 64;
/// Longest AOR the synthetic load produces (`sip:` + 7 digits + `@10.10.10.1` is 22).
const AOR_MAX: usize = 32;
/// Bytes of the value stored per AOR (a binding's contact, instance, device, path...).
const VALUE_LEN: usize = 100;
/// The value's shape: what a Jabber binding's stored text looks like, 100 bytes.
const VALUE: &[u8; VALUE_LEN] =
    b"<sip:1000123@192.0.2.10:51234;transport=tls>;+sip.instance=\"<urn:uuid:00000000-0000-0000>\";x=1234567";
/// io_uring registered memory per executor, as src/rt/mod.rs.
const IO_MEMORY: usize = 512 * 1024;
/// Submission queue depth per ring, as src/rt/mod.rs.
const RING_DEPTH: usize = 256;
/// How often (in operations) a connection looks at the clock for the run's time limit.
const CLOCK_EVERY: u64 = 256;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Design {
    /// (a) lock-striped shards shared by all cores.
    Striped,
    /// (b) one shard per core, forwarding over the channel mesh, one message per operation.
    Owned,
    /// (b) with the forwarded operations of one scheduler round sent as one message per peer.
    OwnedBatched,
}

#[derive(Clone, Copy, Debug)]
struct Args {
    design: Design,
    executors: usize,
    ops: u64,
    pool: u64,
    conns: usize,
    /// Executors that hold connections (the first `active`); the others only own a shard.
    active: usize,
    limit: Duration,
}

fn usage() -> ! {
    eprintln!(
        "usage: shard_choice --design a|b|b-batch [--executors N] [--ops N] [--pool N] [--conns K] \
         [--active N] [--limit-s S]"
    );
    std::process::exit(2);
}

fn parse_args() -> Args {
    let mut args = Args {
        design: Design::Striped,
        executors: 2,
        ops: 2_000_000,
        pool: 1_000_000,
        conns: 64,
        active: 0,
        limit: Duration::from_secs(25),
    };
    let mut it = std::env::args().skip(1);
    while let Some(flag) = it.next() {
        let value = it.next().unwrap_or_else(|| usage());
        let number = || value.parse::<u64>().unwrap_or_else(|_| usage());
        match flag.as_str() {
            "--design" => {
                args.design = match value.as_str() {
                    "a" | "striped" => Design::Striped,
                    "b" | "owned" => Design::Owned,
                    "b-batch" => Design::OwnedBatched,
                    _ => usage(),
                }
            }
            "--executors" => args.executors = number() as usize,
            "--ops" => args.ops = number(),
            "--pool" => args.pool = number(),
            "--conns" => args.conns = number() as usize,
            "--active" => args.active = number() as usize,
            "--limit-s" => args.limit = Duration::from_secs(number()),
            _ => usage(),
        }
    }
    if args.active == 0 {
        args.active = args.executors;
    }
    if args.executors == 0
        || args.conns == 0
        || args.pool == 0
        || args.pool > 8_999_999
        || args.active > args.executors
    {
        usage();
    }
    if args.design != Design::Striped && args.executors < 2 {
        eprintln!("design b needs at least 2 executors");
        std::process::exit(2);
    }
    args
}

/// One REGISTER's table work: the AOR, its CSeq, the value to store.
#[derive(Clone, Debug)]
struct Op {
    aor: [u8; AOR_MAX],
    len: u8,
    cseq: u32,
    value: [u8; VALUE_LEN],
}

impl Op {
    fn aor(&self) -> &[u8] {
        &self.aor[..usize::from(self.len)]
    }
}

/// The operations of one connection: a splitmix64 sequence of AOR numbers, CSeq counting up.
struct Stream {
    state: u64,
    cseq: u32,
}

impl Stream {
    fn new(global_conn: u64) -> Self {
        Self {
            state: 0x5eed_0000_0000_0000 ^ global_conn.wrapping_mul(0x9e37_79b9_7f4a_7c15),
            cseq: 0,
        }
    }

    fn next(&mut self, pool: u64) -> Op {
        self.state = self.state.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.state;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^= z >> 31;
        let user = 1_000_000 + z % pool;
        self.cseq += 1;
        let mut aor = [0u8; AOR_MAX];
        let mut w = &mut aor[..];
        write!(w, "sip:{user}@10.10.10.1").expect("AOR fits");
        let len = (AOR_MAX - w.len()) as u8;
        let mut value = *VALUE;
        value[VALUE_LEN - 4..].copy_from_slice(&self.cseq.to_be_bytes());
        Op {
            aor,
            len,
            cseq: self.cseq,
            value,
        }
    }
}

/// Which stripe (a) or owner core (b) an AOR belongs to: FNV-1a with a final mix.
fn aor_hash(aor: &[u8]) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for &b in aor {
        h = (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3);
    }
    h ^= h >> 33;
    h = h.wrapping_mul(0xff51_afd7_ed55_8ccd);
    h ^ (h >> 33)
}

#[derive(Clone, Copy, Debug)]
enum Outcome {
    Inserted,
    Updated,
    /// The stored CSeq was not lower: nothing changed (RFC 3261 §10.3 step 7).
    Stale,
}

#[derive(Debug)]
struct Entry {
    cseq: u32,
    value: [u8; VALUE_LEN],
}

/// One shard of the table; aligned so that two stripes' locks never share a cache line pair.
#[repr(align(128))]
#[derive(Debug)]
struct Shard {
    map: HashMap<Box<[u8]>, Entry>,
}

impl Shard {
    fn with_capacity(n: usize) -> Self {
        Self {
            map: HashMap::with_capacity(n),
        }
    }

    /// The check-and-update of one REGISTER.
    fn apply(&mut self, op: &Op) -> Outcome {
        match self.map.get_mut(op.aor()) {
            Some(e) if op.cseq <= e.cseq => Outcome::Stale,
            Some(e) => {
                e.cseq = op.cseq;
                e.value = op.value;
                Outcome::Updated
            }
            None => {
                self.map.insert(
                    op.aor().into(),
                    Entry {
                        cseq: op.cseq,
                        value: op.value,
                    },
                );
                Outcome::Inserted
            }
        }
    }
}

/// Counts of one connection, executor or run.
#[derive(Clone, Copy, Debug, Default)]
struct Tally {
    ops: u64,
    inserted: u64,
    updated: u64,
    stale: u64,
    forwarded: u64,
    /// Operations this executor applied for another core.
    served: u64,
    /// A sum over the outcomes: stands for the answer each connection writes back.
    answered: u64,
    cut: bool,
}

impl Tally {
    fn count(&mut self, outcome: Outcome) {
        self.ops += 1;
        match outcome {
            Outcome::Inserted => self.inserted += 1,
            Outcome::Updated => self.updated += 1,
            Outcome::Stale => self.stale += 1,
        }
        // The answer the connection writes back.
        self.answered = self.answered.wrapping_add(outcome as u64);
    }

    fn add(&mut self, o: &Tally) {
        self.ops += o.ops;
        self.inserted += o.inserted;
        self.updated += o.updated;
        self.stale += o.stale;
        self.forwarded += o.forwarded;
        self.served += o.served;
        self.answered = self.answered.wrapping_add(o.answered);
        self.cut |= o.cut;
    }
}

/// Connection tasks on executor `e`.
fn conns_on(args: &Args, e: usize) -> usize {
    if e < args.active {
        args.conns
    } else {
        0
    }
}

/// The stream number and operation count of connection `c` on executor `e`.
fn share(args: &Args, e: usize, c: usize) -> (u64, u64) {
    let streams = (args.active * args.conns) as u64;
    let global = (e * args.conns + c) as u64;
    let n = args.ops / streams + u64::from(global < args.ops % streams);
    (global, n)
}

fn executor(index: usize) -> LocalExecutorBuilder {
    LocalExecutorBuilder::new(Placement::Fixed(index))
        .name(&format!("shard-{index}"))
        .io_memory(IO_MEMORY)
        .ring_depth(RING_DEPTH)
}

// ---------------------------------------------------------------- (a) lock-striped

fn run_striped(args: Args, start: Arc<Barrier>, end: Arc<Barrier>) -> Vec<Tally> {
    let per_stripe = (args.pool as usize).div_ceil(STRIPES);
    let stripes: Arc<[Mutex<Shard>; STRIPES]> = Arc::new(std::array::from_fn(|_| {
        Mutex::new(Shard::with_capacity(per_stripe))
    }));
    let handles: Vec<_> = (0..args.executors)
        .map(|e| {
            let stripes = stripes.clone();
            let (start, end) = (start.clone(), end.clone());
            executor(e)
                .spawn(move || async move {
                    start.wait();
                    let deadline = Instant::now() + args.limit;
                    let conns: Vec<Task<Tally>> = (0..conns_on(&args, e))
                        .map(|c| {
                            let stripes = stripes.clone();
                            let (global, n) = share(&args, e, c);
                            glommio::spawn_local(async move {
                                let mut stream = Stream::new(global);
                                let mut t = Tally::default();
                                for i in 0..n {
                                    if i % CLOCK_EVERY == 0 && Instant::now() > deadline {
                                        t.cut = true;
                                        break;
                                    }
                                    let op = stream.next(args.pool);
                                    let stripe = (aor_hash(op.aor()) % STRIPES as u64) as usize;
                                    let outcome =
                                        stripes[stripe].lock().expect("stripe poisoned").apply(&op);
                                    t.count(outcome);
                                    yield_now().await;
                                }
                                t
                            })
                        })
                        .collect();
                    let mut total = Tally::default();
                    for c in conns {
                        total.add(&c.await);
                    }
                    end.wait();
                    total
                })
                .expect("executor")
        })
        .collect();
    let tallies: Vec<Tally> = handles
        .into_iter()
        .map(|h| h.join().expect("executor failed"))
        .collect();
    let distinct: usize = stripes
        .iter()
        .map(|s| s.lock().expect("stripe").map.len())
        .sum();
    println!("# distinct AORs in the table: {distinct}");
    tallies
}

// ---------------------------------------------------------------- (b) shared-nothing

#[derive(Debug)]
enum Msg {
    /// Apply `op` on the owner's shard and answer to connection `conn` of the sender.
    Request {
        op: Op,
        conn: u32,
    },
    Reply {
        conn: u32,
        outcome: Outcome,
    },
    /// Several requests at once (`b-batch`), answered by one `Replies`.
    Requests(Vec<(Op, u32)>),
    Replies(Vec<(u32, Outcome)>),
    /// The sender's connections are finished: it will send no more requests.
    Done,
}

/// Where a forwarded operation's outcome lands for the connection task waiting on it.
#[derive(Default)]
struct Slot {
    outcome: Cell<Option<Outcome>>,
    waker: RefCell<Option<Waker>>,
}

impl Slot {
    fn fill(&self, outcome: Outcome) {
        self.outcome.set(Some(outcome));
        if let Some(w) = self.waker.borrow_mut().take() {
            w.wake();
        }
    }

    async fn wait(&self) -> Outcome {
        poll_fn(|cx| match self.outcome.take() {
            Some(o) => Poll::Ready(o),
            None => {
                *self.waker.borrow_mut() = Some(cx.waker().clone());
                Poll::Pending
            }
        })
        .await
    }
}

/// `b-batch`: the operations for one peer waiting for its flusher task, which sends them as one
/// message when it next runs (after every task made runnable before it has had its turn).
#[derive(Default)]
struct Outbox {
    pending: RefCell<Vec<(Op, u32)>>,
    closed: Cell<bool>,
    waker: RefCell<Option<Waker>>,
}

impl Outbox {
    fn push(&self, op: Op, conn: u32) {
        self.pending.borrow_mut().push((op, conn));
        if let Some(w) = self.waker.borrow_mut().take() {
            w.wake();
        }
    }

    fn close(&self) {
        self.closed.set(true);
        if let Some(w) = self.waker.borrow_mut().take() {
            w.wake();
        }
    }

    /// The next batch, or None once closed and empty.
    async fn next(&self) -> Option<Vec<(Op, u32)>> {
        poll_fn(|cx| {
            let mut pending = self.pending.borrow_mut();
            if !pending.is_empty() {
                Poll::Ready(Some(std::mem::take(&mut *pending)))
            } else if self.closed.get() {
                Poll::Ready(None)
            } else {
                *self.waker.borrow_mut() = Some(cx.waker().clone());
                Poll::Pending
            }
        })
        .await
    }
}

async fn send(senders: &Senders<Msg>, to: usize, msg: Msg) {
    // The channel holds every message that can be in flight (see `capacity`): never full.
    senders.send_to(to, msg).await.expect("mesh send");
}

fn run_owned(args: Args, batch: bool, start: Arc<Barrier>, end: Arc<Barrier>) -> Vec<Tally> {
    // Per direction: the sender's requests (one per connection at most), its replies to the
    // receiver's requests (as many), and Done.
    let capacity = 2 * args.conns + 2;
    let mesh = MeshBuilder::<Msg, _>::full(args.executors, capacity);
    let per_core = (args.pool as usize).div_ceil(args.executors);
    let handles: Vec<_> = (0..args.executors)
        .map(|e| {
            let mesh = mesh.clone();
            let (start, end) = (start.clone(), end.clone());
            executor(e)
                .spawn(move || async move {
                    let (senders, mut receivers) = mesh.join().await.expect("mesh join");
                    let me = senders.peer_id();
                    let cores = senders.nr_consumers();
                    let senders = Rc::new(senders);
                    let shard = Rc::new(RefCell::new(Shard::with_capacity(per_core)));
                    // One slot per connection, and the last one for "every peer is done".
                    let slots: Rc<Vec<Slot>> =
                        Rc::new((0..=args.conns).map(|_| Slot::default()).collect());
                    let peers_done = Rc::new(Cell::new(0usize));
                    let served = Rc::new(Cell::new(0u64));
                    let dispatchers: Vec<Task<()>> = receivers
                        .streams()
                        .into_iter()
                        .map(|(peer, rx)| {
                            let (senders, shard, slots) =
                                (senders.clone(), shard.clone(), slots.clone());
                            let (peers_done, served) = (peers_done.clone(), served.clone());
                            glommio::spawn_local(async move {
                                while let Some(msg) = rx.recv().await {
                                    match msg {
                                        Msg::Request { op, conn } => {
                                            let outcome = shard.borrow_mut().apply(&op);
                                            served.set(served.get() + 1);
                                            send(&senders, peer, Msg::Reply { conn, outcome })
                                                .await;
                                        }
                                        Msg::Reply { conn, outcome } => {
                                            slots[conn as usize].fill(outcome);
                                        }
                                        Msg::Requests(ops) => {
                                            let replies: Vec<(u32, Outcome)> = {
                                                let mut table = shard.borrow_mut();
                                                ops.iter()
                                                    .map(|(op, conn)| (*conn, table.apply(op)))
                                                    .collect()
                                            };
                                            served.set(served.get() + replies.len() as u64);
                                            send(&senders, peer, Msg::Replies(replies)).await;
                                        }
                                        Msg::Replies(replies) => {
                                            for (conn, outcome) in replies {
                                                slots[conn as usize].fill(outcome);
                                            }
                                        }
                                        Msg::Done => {
                                            peers_done.set(peers_done.get() + 1);
                                            if peers_done.get() == cores - 1 {
                                                slots[args.conns].fill(Outcome::Stale);
                                            }
                                        }
                                    }
                                }
                            })
                        })
                        .collect();
                    let outboxes: Rc<Vec<Outbox>> =
                        Rc::new((0..cores).map(|_| Outbox::default()).collect());
                    let flushers: Vec<Task<()>> = (0..cores)
                        .filter(|&p| batch && p != me)
                        .map(|peer| {
                            let (senders, outboxes) = (senders.clone(), outboxes.clone());
                            glommio::spawn_local(async move {
                                while let Some(ops) = outboxes[peer].next().await {
                                    send(&senders, peer, Msg::Requests(ops)).await;
                                }
                            })
                        })
                        .collect();
                    start.wait();
                    let deadline = Instant::now() + args.limit;
                    let conns: Vec<Task<Tally>> = (0..conns_on(&args, e))
                        .map(|c| {
                            let (senders, shard, slots) =
                                (senders.clone(), shard.clone(), slots.clone());
                            let outboxes = outboxes.clone();
                            let (global, n) = share(&args, e, c);
                            glommio::spawn_local(async move {
                                let mut stream = Stream::new(global);
                                let mut t = Tally::default();
                                for i in 0..n {
                                    if i % CLOCK_EVERY == 0 && Instant::now() > deadline {
                                        t.cut = true;
                                        break;
                                    }
                                    let op = stream.next(args.pool);
                                    let owner = (aor_hash(op.aor()) % cores as u64) as usize;
                                    let outcome = if owner == me {
                                        shard.borrow_mut().apply(&op)
                                    } else {
                                        t.forwarded += 1;
                                        let conn = c as u32;
                                        if batch {
                                            outboxes[owner].push(op, conn);
                                        } else {
                                            send(&senders, owner, Msg::Request { op, conn }).await;
                                        }
                                        slots[c].wait().await
                                    };
                                    t.count(outcome);
                                    yield_now().await;
                                }
                                t
                            })
                        })
                        .collect();
                    let mut total = Tally::default();
                    for c in conns {
                        total.add(&c.await);
                    }
                    for outbox in outboxes.iter() {
                        outbox.close();
                    }
                    for f in flushers {
                        f.await;
                    }
                    for peer in (0..cores).filter(|&p| p != me) {
                        send(&senders, peer, Msg::Done).await;
                    }
                    // Every peer's requests are answered once it is done, and ours are: close.
                    slots[args.conns].wait().await;
                    senders.close();
                    for d in dispatchers {
                        d.await;
                    }
                    total.served = served.get();
                    end.wait();
                    let distinct = shard.borrow().map.len();
                    (total, distinct)
                })
                .expect("executor")
        })
        .collect();
    let mut distinct = 0;
    let tallies = handles
        .into_iter()
        .map(|h| {
            let (t, d) = h.join().expect("executor failed");
            distinct += d;
            t
        })
        .collect();
    println!("# distinct AORs in the table: {distinct}");
    tallies
}

// ---------------------------------------------------------------- measurement

/// utime and stime of the whole process, in clock ticks (USER_HZ, 100 on Linux).
fn cpu_ticks() -> (u64, u64) {
    let stat = std::fs::read_to_string("/proc/self/stat").expect("/proc/self/stat");
    // Fields after the command name, which is in parentheses and may hold spaces; the first
    // of them is field 3 (state), so utime (14) and stime (15) are at 11 and 12.
    let rest = &stat[stat.rfind(')').expect("stat format") + 1..];
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let utime: u64 = fields[11].parse().expect("utime");
    let stime: u64 = fields[12].parse().expect("stime");
    (utime, stime)
}

/// Voluntary context switches of each live thread of the process, by thread id (an executor
/// parking, a thread blocking on a contended lock).
fn voluntary_switches() -> HashMap<String, u64> {
    let Ok(tasks) = std::fs::read_dir("/proc/self/task") else {
        return HashMap::new();
    };
    tasks
        .filter_map(Result::ok)
        .filter_map(|t| {
            let status = std::fs::read_to_string(t.path().join("status")).ok()?;
            let n = status
                .lines()
                .find_map(|l| l.strip_prefix("voluntary_ctxt_switches:"))?
                .trim()
                .parse::<u64>()
                .ok()?;
            Some((t.file_name().to_string_lossy().into_owned(), n))
        })
        .collect()
}

const TICK_NS: f64 = 1e7;

fn main() {
    let args = parse_args();
    let online = std::thread::available_parallelism().map_or(1, |n| n.get());
    if args.executors > online {
        eprintln!(
            "note: {} executors on {online} CPUs: some share a CPU",
            args.executors
        );
    }
    let start = Arc::new(Barrier::new(args.executors + 1));
    let end = Arc::new(Barrier::new(args.executors + 1));
    let (s, e) = (start.clone(), end.clone());
    let design = args.design;
    let runner = std::thread::spawn(move || match design {
        Design::Striped => run_striped(args, s, e),
        Design::Owned => run_owned(args, false, s, e),
        Design::OwnedBatched => run_owned(args, true, s, e),
    });
    start.wait();
    let t0 = Instant::now();
    let (u0, s0) = cpu_ticks();
    let v0 = voluntary_switches();
    end.wait();
    let wall = t0.elapsed();
    let (u1, s1) = cpu_ticks();
    let v1 = voluntary_switches();
    let tallies = runner.join().expect("runner");

    let mut total = Tally::default();
    for (i, t) in tallies.iter().enumerate() {
        println!(
            "# executor {i}: ops {} forwarded {} served-for-others {} inserted {} updated {} \
             stale {}",
            t.ops, t.forwarded, t.served, t.inserted, t.updated, t.stale
        );
        total.add(t);
    }
    let secs = wall.as_secs_f64();
    let user_ns = (u1 - u0) as f64 * TICK_NS;
    let sys_ns = (s1 - s0) as f64 * TICK_NS;
    let cpu_ns = user_ns + sys_ns;
    let name = match args.design {
        Design::Striped => "a",
        Design::Owned => "b",
        Design::OwnedBatched => "b-batch",
    };
    println!(
        "design={name} executors={} active={} conns={} pool={} ops={} wall_s={secs:.3} ops_per_s={:.0} \
         cpu_s={:.2} cpu_ns_per_op={:.0} user_ns_per_op={:.0} sys_ns_per_op={:.0} \
         forwarded={:.3} switches={} inserted={} cut={}",
        args.executors,
        args.active,
        args.conns,
        args.pool,
        total.ops,
        total.ops as f64 / secs,
        cpu_ns / 1e9,
        cpu_ns / total.ops as f64,
        user_ns / total.ops as f64,
        sys_ns / total.ops as f64,
        total.forwarded as f64 / total.ops as f64,
        v1.iter()
            .map(|(tid, n)| n.saturating_sub(v0.get(tid).copied().unwrap_or(0)))
            .sum::<u64>(),
        total.inserted,
        u8::from(total.cut),
    );
}
