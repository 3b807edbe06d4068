//! Callgrind driver for `benches/parse.rs`: runs one of its workloads N times so that
//! instructions per iteration = (Ir(2N) - Ir(N)) / N, free of setup and process start.
//!
//! `parse_iters <regstorm|regstorm-frame|rsip|memmem> <N>`; see `scripts/bench-parse.sh`.
//! `regstorm-frame` is `Framer::next` alone (no typed access), to split the regstorm figure.

#[path = "../benches/common/mod.rs"]
mod common;

use criterion::black_box;

#[global_allocator]
static GLOBAL: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

fn main() {
    let mut args = std::env::args().skip(1);
    let mode = args.next().unwrap_or_default();
    let n: u64 = args
        .next()
        .and_then(|n| n.parse().ok())
        .expect("usage: parse_iters <regstorm|regstorm-frame|rsip|memmem> <N>");
    let buf = common::input();
    match mode.as_str() {
        "regstorm" => {
            common::check_regstorm(&buf);
            let mut st = common::RegstormState::new();
            let mut headers = [regstorm::sip::EMPTY_HEADER; 64];
            for _ in 0..n {
                black_box(common::regstorm_read(&mut st, black_box(&buf), &mut headers).is_ok());
            }
        }
        "regstorm-frame" => {
            common::check_regstorm(&buf);
            let mut framer = regstorm::sip::Framer::new(regstorm::sip::Limits::default());
            let mut headers = [regstorm::sip::EMPTY_HEADER; 64];
            for _ in 0..n {
                let f = framer.next(black_box(&buf), &mut headers);
                assert!(matches!(f, Ok(regstorm::sip::Frame::Message(_))));
            }
        }
        "rsip" => {
            common::check_rsip(&buf);
            let mut aor = String::with_capacity(128);
            for _ in 0..n {
                black_box(common::rsip_read(black_box(&buf), &mut aor).is_ok());
            }
        }
        "memmem" => {
            common::check_memmem(&buf);
            let finder = memchr::memmem::Finder::new(b"\r\n\r\n");
            for _ in 0..n {
                black_box(common::memmem_floor(&finder, black_box(&buf)));
            }
        }
        other => panic!("unknown mode {other:?}"),
    }
}
