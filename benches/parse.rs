//! Parse + typed header access of the seed's Jabber REGISTER (about 3.3 KB: ~2 KB of headers
//! with a ~950-byte Bearer token, and a 1,271-byte multipart body), three ways in one group:
//!
//! - `regstorm`: `Framer::next` into a reused `[EMPTY_HEADER; 64]`, then typed access to every
//!   header the registrar reads (see `common::regstorm_read`);
//! - `rsip`: `rsip::SipMessage::try_from` plus rsip 0.4's closest typed access to the same
//!   headers (see `common::rsip_read` for what rsip cannot give typed);
//! - `memmem_floor`: a prebuilt `memmem::Finder` locating CRLF CRLF — the floor.
//!
//! Each path is run and checked once before timing, so a bench cannot measure an error path.
//! Throughput is the whole message length. Run: `scripts/bench-parse.sh`, or
//! `cargo bench --bench parse -- --warm-up-time 2 --measurement-time 8`.

mod common;

use criterion::{black_box, criterion_group, criterion_main, Criterion, Throughput};

// The registrar binary runs on jemalloc (src/main.rs); use it here too so the rsip path's
// allocations cost what they would in production. The regstorm path barely allocates.
#[global_allocator]
static GLOBAL: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

fn parse(c: &mut Criterion) {
    let buf = common::input();
    common::check_regstorm(&buf);
    common::check_rsip(&buf);
    common::check_memmem(&buf);

    let mut g = c.benchmark_group("jabber_register");
    g.throughput(Throughput::Bytes(buf.len() as u64));

    g.bench_function("regstorm", |b| {
        let mut st = common::RegstormState::new();
        let mut headers = [regstorm::sip::EMPTY_HEADER; 64];
        b.iter(|| black_box(common::regstorm_read(&mut st, black_box(&buf), &mut headers).is_ok()))
    });

    g.bench_function("rsip", |b| {
        let mut aor = String::with_capacity(128);
        b.iter(|| black_box(common::rsip_read(black_box(&buf), &mut aor).is_ok()))
    });

    g.bench_function("memmem_floor", |b| {
        let finder = memchr::memmem::Finder::new(b"\r\n\r\n");
        b.iter(|| black_box(common::memmem_floor(&finder, black_box(&buf))))
    });

    g.finish();
}

criterion_group!(benches, parse);
criterion_main!(benches);
