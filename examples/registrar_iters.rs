//! Callgrind driver for `benches/registrar.rs`: runs one of its workloads N times on the same
//! state, so that instructions per iteration = (Ir(N2) - Ir(N1)) / (N2 - N1), free of setup
//! (10,000 devices registered, about 10,000 Ed25519 signatures and verifications) and of
//! process start.
//!
//! `registrar_iters <pipeline|frame|verify-hit> <N>`; see `scripts/bench-registrar.sh`.
//! - `pipeline`: frame + parse + `Registrar::handle` (cached token, table update, 200 written);
//! - `frame`: `Framer::next` alone on the same bytes;
//! - `verify-hit`: `Verifier::verify` of the cached token alone.

#[path = "../benches/common_registrar/mod.rs"]
mod common_registrar;

use criterion::black_box;
use regstorm::registrar::Outcome;

#[global_allocator]
static GLOBAL: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

fn main() {
    let mut args = std::env::args().skip(1);
    let mode = args.next().unwrap_or_default();
    let n: u64 = args
        .next()
        .and_then(|n| n.parse().ok())
        .expect("usage: registrar_iters <pipeline|frame|verify-hit> <N>");
    let mut p = common_registrar::Pipeline::new();
    timed_loop(&mut p, &mode, n);
    p.check();
}

/// The N iterations, alone in one function: `scripts/bench-registrar.sh` has callgrind count
/// only inside it (`--toggle-collect`), because the setup's instruction count varies by a few
/// million from run to run (a random Ed25519 key, randomly keyed hash tables), enough to drown
/// a difference of 1,000 iterations.
#[inline(never)]
fn timed_loop(p: &mut common_registrar::Pipeline, mode: &str, n: u64) {
    match mode {
        "pipeline" => {
            for _ in 0..n {
                let o = p.register();
                debug_assert_eq!(o, Outcome::Replied(200));
                black_box((o, p.out.len()));
            }
        }
        "frame" => {
            for _ in 0..n {
                black_box(p.frame());
            }
        }
        "verify-hit" => {
            for _ in 0..n {
                black_box(p.verify_hit());
            }
        }
        other => panic!("unknown mode {other:?}"),
    }
}
