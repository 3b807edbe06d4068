//! Resident memory per verified-token cache entry: fill a cache with N entries carrying
//! Jabber-sized claims and report the RSS delta divided by N.
//!
//!   cargo run --release --example cache_memory -- 1000000

use regstorm::auth::{digest, Claims, CompactClaims, FailureMemory, TokenCache};

#[global_allocator]
static GLOBAL: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

fn rss_bytes() -> u64 {
    let statm = std::fs::read_to_string("/proc/self/statm").expect("/proc/self/statm");
    let pages: u64 = statm
        .split_whitespace()
        .nth(1)
        .and_then(|v| v.parse().ok())
        .expect("statm field 2");
    pages * 4096
}

fn main() {
    let n: usize = std::env::args()
        .nth(1)
        .map_or(1_000_000, |a| a.parse().expect("N"));
    let before = rss_bytes();
    let mut cache = TokenCache::new(n, 30, FailureMemory::new(1024, 60));
    for i in 0..n {
        let user = format!("{}", 1_000_000 + i);
        let claims = Claims {
            sub: user.clone(),
            exp: 1_800_003_600,
            lines: vec![user.clone()],
            dev: Some(format!("CSF{user}")),
        };
        // Distinct token bytes per device; only their digest is stored.
        let d = digest(format!("token-of-{user}").as_bytes());
        cache.insert(d, claims.exp, 42, CompactClaims::new(&claims));
    }
    let after = rss_bytes();
    assert_eq!(cache.len(), n);
    let per = (after - before) as f64 / n as f64;
    println!("entries: {n}");
    println!("slot size: {} octets", TokenCache::SLOT_BYTES);
    println!("rss before: {before} bytes, after: {after} bytes");
    println!("rss per entry: {per:.1} bytes");
}
