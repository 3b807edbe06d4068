//! The sans-IO pipeline per REGISTER: frame and parse the seed's Jabber REGISTER, verify its
//! token (a cache hit), update the binding table, write the 200 OK. One device re-registering
//! (the steady state of a fleet), with a table holding 10,000 other AORs.
//!
//! Group `registrar`, three functions on the same state (see `common_registrar::Pipeline`):
//! - `register_cached_token_200`: the full path;
//! - `frame`: `Framer::next` alone on the same bytes;
//! - `verify_hit`: `Verifier::verify` of the cached token alone, on the registrar's verifier.
//!
//! The setup is shared with `examples/registrar_iters.rs` (the callgrind driver). Run:
//! `scripts/bench-registrar.sh`, or `cargo bench --bench registrar`.

mod common_registrar;

use common_registrar::Pipeline;
use criterion::{black_box, criterion_group, criterion_main, Criterion, Throughput};
use regstorm::registrar::Outcome;

// The registrar binary runs on jemalloc (src/main.rs).
#[global_allocator]
static GLOBAL: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

fn pipeline(c: &mut Criterion) {
    let mut p = Pipeline::new();

    let mut g = c.benchmark_group("registrar");
    g.throughput(Throughput::Elements(1));
    g.bench_function("register_cached_token_200", |b| {
        b.iter(|| {
            let o = p.register();
            debug_assert_eq!(o, Outcome::Replied(200));
            black_box((o, p.out.len()))
        })
    });
    g.bench_function("frame", |b| b.iter(|| black_box(p.frame())));
    g.bench_function("verify_hit", |b| b.iter(|| black_box(p.verify_hit())));
    g.finish();
    // The paths measured were the success paths all along.
    p.check();
}

criterion_group!(benches, pipeline);
criterion_main!(benches);
