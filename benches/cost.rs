//! Deterministic costs (issue 13 item 2): instructions per hot-path operation, counted by
//! callgrind through gungraun, each a small fixed workload repeated a fixed number of times.
//! `scripts/cost.sh` runs this, divides each count by its repetitions (the `xN` in the bench
//! id), writes target/cost.json and compares it with benches/baseline/cost.json.
//!
//! The workloads are the ones the criterion benches time, shared, not copied:
//! `benches/common` (the seed REGISTER read as the registrar reads it, and its memmem floor),
//! `benches/common_registrar` (the sans-IO registrar with a populated table and token cache).
//! The binding table and load-engine workloads live here. Setup (building state, signing
//! tokens) runs outside the count: gungraun counts the benchmark function only, and each one
//! returns its state so that dropping it is not counted either.
//!
//! Every key is fixed (tests/data), so tokens, and with them every count, are the same in
//! every run: Ed25519 and RSA PKCS#1 v1.5 signatures are deterministic, and ring's Ed25519
//! verification takes a data-dependent number of instructions.
//!
//! Not part of `cargo test --all-targets` (`bench = false` in Cargo.toml: it needs valgrind
//! and `gungraun-runner`); run it with `scripts/cost.sh` or `cargo bench --bench cost`.

// gungraun's macros expand to fully qualified paths.
#![allow(unused_qualifications)]

#[path = "common/mod.rs"]
mod common;
#[path = "common_registrar/mod.rs"]
mod common_registrar;

use common_registrar::{Pipeline, NOW};
use gungraun::{
    library_benchmark, library_benchmark_group, main, Callgrind, LibraryBenchmarkConfig,
};
use regstorm::auth::Signer;
use regstorm::config::{ListenerKind, RegistrarSection};
use regstorm::load::engine::{Engine, Transport};
use regstorm::load::jabber::{cisco_body, Register, SAMPLE_TOKEN};
use regstorm::load::profile::Profile;
use regstorm::registrar::{Bindings, ContactUpdate, Facts, Outcome, Registrar};
use regstorm::sip::{Aor, ContactValue, Frame, Framer, Header, Limits, EMPTY_HEADER};
use std::hint::black_box;
use std::sync::Arc;

#[global_allocator]
static GLOBAL: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

/// Devices already in the table and tokens in the cache for the registrar workloads. The
/// criterion bench uses 10,000; instruction counts do not depend on it beyond hash-table
/// probes, and each filler costs a signature and a verification under valgrind.
const OTHERS: u32 = 1_000;

fn key(file: &str) -> Signer {
    let path = format!("{}/tests/data/{file}", env!("CARGO_MANIFEST_DIR"));
    let pem = std::fs::read(&path).unwrap_or_else(|e| panic!("{path}: {e}"));
    Signer::from_pkcs8(&pem, file).unwrap_or_else(|e| panic!("{path}: {e}"))
}

fn ed25519() -> Signer {
    key("ed25519-openssl.pem")
}

// ---------------------------------------------------------------------------------------------
// Parsing: the seed REGISTER, and the floor (one memmem scan for the end of the head).

/// The seed REGISTER with the state the registrar keeps per connection.
struct Parse {
    buf: Vec<u8>,
    state: common::RegstormState,
}

fn parse_setup() -> Parse {
    let buf = common::input();
    common::check_regstorm(&buf);
    common::check_memmem(&buf);
    Parse {
        buf,
        state: common::RegstormState::new(),
    }
}

#[library_benchmark]
#[bench::x100(setup = parse_setup)]
fn parse_seed_register(mut p: Parse) -> Parse {
    for _ in 0..100 {
        let mut headers: [Header<'_>; 64] = [EMPTY_HEADER; 64];
        black_box(common::regstorm_read(&mut p.state, black_box(&p.buf), &mut headers).is_ok());
    }
    p
}

#[library_benchmark]
#[bench::x100(setup = parse_setup)]
fn floor_memmem_scan(p: Parse) -> Parse {
    let finder = memchr::memmem::Finder::new(b"\r\n\r\n");
    for _ in 0..100 {
        black_box(common::memmem_floor(&finder, black_box(&p.buf)));
    }
    p
}

// ---------------------------------------------------------------------------------------------
// The registrar core: a cached-token REGISTER, the cache hit alone and its floor (one
// SHA-256 of the token), and fresh-token REGISTERs (a verification each).

fn cached_setup() -> Pipeline {
    let mut p = Pipeline::build(&ed25519(), &[], OTHERS);
    p.check();
    p
}

/// Every path measured is its success path: a 200 with the binding, a cache hit.
fn cached_check(mut p: Pipeline) {
    p.check();
}

#[library_benchmark]
#[bench::x100(setup = cached_setup, teardown = cached_check)]
fn register_cached_token(mut p: Pipeline) -> Pipeline {
    for _ in 0..100 {
        black_box(p.register());
    }
    p
}

#[library_benchmark]
#[bench::x100(setup = cached_setup, teardown = cached_check)]
fn verify_cache_hit(mut p: Pipeline) -> Pipeline {
    for _ in 0..100 {
        black_box(p.verify_hit());
    }
    p
}

#[library_benchmark]
#[bench::x100(setup = cached_setup)]
fn floor_sha256(p: Pipeline) -> Pipeline {
    for _ in 0..100 {
        black_box(regstorm::auth::digest(black_box(p.token.as_bytes())));
    }
    p
}

/// The cached-token pipeline plus requests with tokens it never saw, signed by `fresh`.
struct Fresh {
    p: Pipeline,
    wires: Vec<Vec<u8>>,
}

const FRESH: u32 = 20;

fn fresh_setup(fresh: Signer) -> Fresh {
    let mut p = Pipeline::build(&ed25519(), &[&fresh], OTHERS);
    p.check();
    let wires = Pipeline::fresh_token_wires(&fresh, FRESH);
    Fresh { p, wires }
}

fn fresh_eddsa() -> Fresh {
    // A second Ed25519 key: the device's new tokens come from another issuer key than the
    // fillers', so that the `kid` lookup is part of it, as with RS256.
    fresh_setup(key("ed25519-python.pem"))
}

fn fresh_rs256() -> Fresh {
    fresh_setup(key("rsa2048.pem"))
}

/// Every fresh REGISTER was a 200 and a cache miss (the misses are counted by the cache).
fn fresh_check(mut f: Fresh) {
    assert!(
        f.p.out.starts_with(b"SIP/2.0 200 "),
        "{}",
        String::from_utf8_lossy(&f.p.out)
    );
    let token = {
        let wire = f.wires.last().unwrap();
        let mut hs = [EMPTY_HEADER; 64];
        let msg = regstorm::sip::parse(wire, &mut hs)
            .unwrap()
            .complete()
            .unwrap();
        msg.bearer().unwrap().unwrap().token.to_vec()
    };
    let v = f.p.registrar.verifier().verify(&token, NOW).unwrap();
    assert!(
        v.cached,
        "the last fresh token is cached after its REGISTER"
    );
}

#[library_benchmark]
#[bench::eddsa_x20(setup = fresh_eddsa, teardown = fresh_check)]
#[bench::rs256_x20(setup = fresh_rs256, teardown = fresh_check)]
fn register_fresh_token(mut f: Fresh) -> Fresh {
    for wire in &f.wires {
        let o = f.p.handle(wire);
        debug_assert_eq!(o, Outcome::Replied(200));
        black_box(o);
    }
    f
}

/// The fresh-token workload on a core whose verification budget is spent: each REGISTER is
/// answered 503 with a Retry-After from the calendar (what a storm's every extra arrival costs
/// the registrar beyond reading it).
fn shed_setup() -> Fresh {
    let mut f = fresh_eddsa();
    let spent = regstorm::registrar::AdmissionConfig {
        share_start: 0.0,
        ..regstorm::registrar::AdmissionConfig::default()
    };
    f.p.registrar
        .set_admission(regstorm::registrar::Admission::new(spent, 7));
    f
}

/// Every REGISTER was shed (answered 503 and counted as shed, not verified).
fn shed_check(mut f: Fresh) {
    assert!(
        f.p.out.starts_with(b"SIP/2.0 503 "),
        "{}",
        String::from_utf8_lossy(&f.p.out)
    );
    assert_eq!(f.p.registrar.verifier().stats().shed, u64::from(FRESH));
}

#[library_benchmark]
#[bench::x20(setup = shed_setup, teardown = shed_check)]
fn register_shed(mut f: Fresh) -> Fresh {
    for wire in &f.wires {
        let o = f.p.handle(wire);
        debug_assert_eq!(o, Outcome::Replied(503));
        black_box(o);
    }
    f
}

// ---------------------------------------------------------------------------------------------
// The binding table alone: a new device's binding (insert) and a re-registration (refresh).

/// Devices' REGISTERs, parsed once; the table filled with the first `OTHERS`.
struct Table {
    bindings: Bindings,
    /// (AOR, the wire the Contact borrows from), per device; the wires are leaked so that
    /// contacts can be `'static`.
    devices: Vec<(Aor, regstorm::sip::Contact<'static>)>,
    cseq: u32,
}

const TABLE_OPS: usize = 100;

fn table_setup() -> Table {
    let body = cisco_body();
    let devices: Vec<(Aor, regstorm::sip::Contact<'static>)> = (0..OTHERS as usize + TABLE_OPS)
        .map(|i| {
            let user: &'static str = Box::leak(format!("{}", 2_000_000 + i).into_boxed_str());
            let contact_user: &'static str =
                Box::leak(format!("a8ae9f92-4b07-a0d7-d701-{i:012x}").into_boxed_str());
            let instance: &'static str =
                Box::leak(format!("<urn:uuid:00000000-0000-0000-0000-{i:012x}>").into_boxed_str());
            let mut r = Register::seed(SAMPLE_TOKEN);
            r.user = user;
            r.contact_user = contact_user;
            r.instance = instance;
            let mut wire = Vec::new();
            r.write(&mut wire, &body);
            let wire: &'static [u8] = Box::leak(wire.into_boxed_slice());
            let headers: &'static mut [Header<'static>; 64] =
                Box::leak(Box::new([EMPTY_HEADER; 64]));
            let msg = regstorm::sip::parse(wire, headers)
                .unwrap()
                .complete()
                .unwrap();
            let to = msg.to().unwrap().sip_uri().unwrap();
            let Some(Ok(ContactValue::Addr(c))) = msg.contacts().next() else {
                panic!("a Contact")
            };
            (Aor::new(&to), c)
        })
        .collect();
    let t = Table {
        // One stripe: with 64, how the random hash key spreads the AORs decides which stripes'
        // tables grow inside the count, which moved it by 2 % from run to run. The work per
        // binding is the same in any stripe.
        bindings: Bindings::new(1),
        devices,
        cseq: 1,
    };
    for i in 0..OTHERS as usize {
        assert_eq!(upsert(&t, i, 1), Some(1));
    }
    t
}

fn upsert(t: &Table, i: usize, cseq: u32) -> Option<usize> {
    let (aor, contact) = &t.devices[i];
    t.bindings.register_contact(
        &ContactUpdate {
            aor,
            contact: *contact,
            call_id: b"88232345-12340017-00001c0b-00000cfa@10.10.10.10",
            cseq,
            conn: 1,
            listener: ListenerKind::Oauth,
            expires: 120,
            max_contacts: 10,
        },
        NOW,
    )
}

fn table_check(t: Table) {
    assert_eq!(t.bindings.len(), OTHERS as usize + TABLE_OPS);
}

fn table_full() -> Table {
    let mut t = table_setup();
    for i in OTHERS as usize..OTHERS as usize + TABLE_OPS {
        assert_eq!(upsert(&t, i, 1), Some(1));
    }
    t.cseq = 2;
    t
}

#[library_benchmark]
#[bench::x100(setup = table_setup, teardown = table_check)]
fn binding_insert(t: Table) -> Table {
    for i in OTHERS as usize..OTHERS as usize + TABLE_OPS {
        black_box(upsert(&t, i, 1));
    }
    t
}

#[library_benchmark]
#[bench::x100(setup = table_full, teardown = table_check)]
fn binding_refresh(t: Table) -> Table {
    // The same Call-ID with the next CSeq: the device re-registering (RFC 3261 §10.3 step 7).
    for i in 0..TABLE_OPS {
        black_box(upsert(&t, i, t.cseq));
    }
    t
}

// ---------------------------------------------------------------------------------------------
// The load engine: building a re-REGISTER (token text rebuilt, the request written) and
// reading its 200 (framed, matched to its device, latency recorded).

const T0_US: u64 = 1_800_000_000_000_000;
/// Devices on the connection: each second they all re-register in one tick, so the engine's
/// once-a-second work (a new timeline row and its histogram) is shared as in a real run
/// rather than charged to one REGISTER.
const DEVICES: u64 = 100;
/// Seconds counted.
const ROUNDS: usize = 2;
/// Each answer arrives this long after its REGISTER went.
const ANSWER_US: u64 = 200;

/// 100 devices over one plain TCP connection, re-registering every second, past their first
/// 407 and 200.
struct Load {
    engine: Engine,
    /// Per round, the registrar's answers to that round's REGISTERs, recorded from an
    /// identical engine.
    answers: Vec<Vec<u8>>,
    /// When the last answers arrived (the devices re-register a second later).
    now_us: u64,
}

fn engine_profile() -> Profile {
    let mut p = Profile::find("ci").unwrap();
    p.devices = DEVICES;
    p.connections = 1;
    p.ramp_s = 0;
    p.reregister_s = 1;
    p.token_ttl_s = 3600;
    p
}

fn new_engine() -> Engine {
    let mut e = Engine::new(
        &engine_profile(),
        Transport::Tcp,
        ed25519(),
        0,
        DEVICES,
        1,
        T0_US,
    );
    // The devices' first poll asks for their connection.
    e.run_due(T0_US);
    assert_eq!(e.take_connects(), [0]);
    e.connecting(0);
    e.link_up(0, "127.0.0.1:5062", T0_US).unwrap();
    e
}

/// What the engine has for its socket now.
fn take_wire(e: &mut Engine) -> Vec<u8> {
    let mut bytes = Vec::new();
    loop {
        // The engine seals at most about 256 KiB ahead of the socket: ask until it is empty.
        let wire = e.wire(0);
        if wire.is_empty() {
            return bytes;
        }
        let n = wire.len();
        bytes.extend_from_slice(wire);
        e.wrote(0, n);
    }
}

/// One tick at `now_us`: the engine's due REGISTERs through `registrar`, their answers back
/// `ANSWER_US` later. Returns the requests and the answers.
fn exchange(e: &mut Engine, r: &mut Registrar, now_us: u64) -> (Vec<u8>, Vec<u8>) {
    e.run_due(now_us);
    let req = take_wire(e);
    let mut framer = Framer::new(Limits::default());
    let facts = Facts {
        listener: ListenerKind::Tcp,
        conn: 1,
        source: None,
    };
    let (mut at, mut out, mut n) = (0, Vec::new(), 0);
    while at < req.len() {
        let mut hs = [EMPTY_HEADER; 64];
        let Ok(Frame::Message(m)) = framer.next(&req[at..], &mut hs) else {
            panic!("the engine wrote no whole REGISTER at {now_us}")
        };
        at += m.len();
        n += 1;
        r.handle(&m, &facts, now_us / 1_000_000, &mut out);
    }
    assert_eq!(n, DEVICES, "every device sent one REGISTER at {now_us}");
    e.receive_at(0, &out, now_us + ANSWER_US, now_us + ANSWER_US)
        .unwrap();
    (req, out)
}

fn engine_setup() -> Load {
    let signer = ed25519();
    let keys = Arc::new(regstorm::auth::KeySet::new(vec![signer
        .public_key()
        .clone()]));
    let mut registrar = Registrar::new(
        RegistrarSection::default(),
        regstorm::auth::Verifier::new(keys, regstorm::auth::Policy::default(), 1000),
    );
    // Two identical engines (same profile, seed, key and clock: the same bytes): the first
    // meets the registrar and records its answers, the second replays them in the count.
    let mut probe = new_engine();
    let mut engine = new_engine();
    let mut now = T0_US;
    // The first REGISTERs (no token, 407) and their retries with a token (200), sent as
    // each 407 is read.
    for _ in 0..2 {
        let (req, answers) = exchange(&mut probe, &mut registrar, now);
        engine.run_due(now);
        assert_eq!(
            take_wire(&mut engine),
            req,
            "both engines write the same bytes"
        );
        now += ANSWER_US;
        engine.receive_at(0, &answers, now, now).unwrap();
    }
    let mut answers = Vec::new();
    let mut t = now;
    for _ in 0..ROUNDS {
        t += 1_000_000;
        let (_, a) = exchange(&mut probe, &mut registrar, t);
        t += ANSWER_US;
        assert_eq!(
            a.windows(12).filter(|w| w == b"SIP/2.0 200 ").count() as u64,
            DEVICES
        );
        answers.push(a);
    }
    Load {
        engine,
        answers,
        now_us: now,
    }
}

fn engine_check(l: Load) {
    let s = l.engine.stats();
    assert_eq!(s.responses.get(&407), Some(&DEVICES));
    assert_eq!(
        s.responses.get(&200),
        Some(&(DEVICES * (1 + ROUNDS as u64))),
        "every replayed answer matched its REGISTER"
    );
    assert_eq!(s.errors + s.timeouts, 0);
}

#[library_benchmark]
#[bench::x200(setup = engine_setup, teardown = engine_check)]
fn engine_register_and_answer(mut l: Load) -> Load {
    for a in &l.answers {
        let send = l.now_us + 1_000_000;
        l.engine.run_due(send);
        loop {
            let n = l.engine.wire(0).len();
            if n == 0 {
                break;
            }
            l.engine.wrote(0, n);
        }
        l.now_us = send + ANSWER_US;
        l.engine
            .receive_at(0, black_box(a), l.now_us, l.now_us)
            .unwrap();
    }
    l
}

library_benchmark_group!(
    name = parse,
    benchmarks = [parse_seed_register, floor_memmem_scan]
);

library_benchmark_group!(
    name = registrar,
    benchmarks = [
        register_cached_token,
        verify_cache_hit,
        floor_sha256,
        register_fresh_token,
        register_shed
    ]
);

library_benchmark_group!(name = table, benchmarks = [binding_insert, binding_refresh]);

library_benchmark_group!(name = engine, benchmarks = [engine_register_and_answer]);

main!(
    // Instructions are the figure: no cache simulation (faster, and nothing it adds is used).
    config = LibraryBenchmarkConfig::default().tool(Callgrind::with_args(["--cache-sim=no"])),
    library_benchmark_groups = [parse, registrar, table, engine]
);
