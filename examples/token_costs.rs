//! What one device costs in a storm, per signing algorithm: the load engine signing its token
//! (mint: claims JSON, base64url, signature) and the registrar verifying it (a cache miss:
//! decode, signature, claims), on the tokens the engine really mints. The lab default is
//! chosen by the sum (README "Load-engine decisions").
//!
//!   cargo run --release --example token_costs [-- ITERATIONS]

use regstorm::auth::{generate_pkcs8, Alg, KeySet, Policy, Signer, TokenClaims, Verifier};
use std::sync::Arc;
use std::time::Instant;

#[global_allocator]
static GLOBAL: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

const NOW: u64 = 1_800_000_000;

fn signer(alg: Alg) -> Signer {
    let pkcs8 = match alg {
        Alg::RS256 => std::fs::read(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/tests/data/rsa2048.pem"
        ))
        .expect("tests/data/rsa2048.pem"),
        _ => generate_pkcs8(alg).expect("key"),
    };
    Signer::from_pkcs8(&pkcs8, "key").expect("signer")
}

/// Median of `rounds` rounds of `n` calls, µs per call.
fn time(rounds: usize, n: usize, mut f: impl FnMut(usize)) -> f64 {
    let mut per: Vec<f64> = (0..rounds)
        .map(|r| {
            let t = Instant::now();
            for i in 0..n {
                f(r * n + i);
            }
            t.elapsed().as_secs_f64() * 1e6 / n as f64
        })
        .collect();
    per.sort_by(f64::total_cmp);
    per[rounds / 2]
}

fn main() {
    let n: usize = std::env::args()
        .nth(1)
        .map_or(2_000, |a| a.parse().expect("ITERATIONS"));
    println!("| alg | sign (mint) µs | verify (miss) µs | sum µs | token octets |");
    println!("|---|---:|---:|---:|---:|");
    for alg in [Alg::EdDSA, Alg::ES256, Alg::RS256] {
        let s = signer(alg);
        // RSA signing is slow: fewer iterations.
        let n = if alg == Alg::RS256 { n / 10 } else { n };
        let users: Vec<String> = (0..n * 5).map(|i| (1_000_000 + i).to_string()).collect();
        let devs: Vec<String> = users.iter().map(|u| format!("CSF{u}")).collect();
        let claims = |i: usize| TokenClaims {
            sub: &users[i],
            exp: NOW + 3600,
            iat: NOW,
            dev: Some(&devs[i]),
            ..TokenClaims::default()
        };
        let mut tokens = Vec::with_capacity(n * 5);
        let sign_us = time(5, n, |i| tokens.push(s.mint(&claims(i))));
        let keys = Arc::new(KeySet::new(vec![s.public_key().clone()]));
        let mut v = Verifier::new(keys, Policy::default(), 1);
        let verify_us = time(5, n, |i| {
            v.cache_mut().clear();
            assert!(v.verify(tokens[i].as_bytes(), NOW).is_ok());
        });
        println!(
            "| {} | {sign_us:.1} | {verify_us:.1} | {:.1} | {} |",
            alg.as_str(),
            sign_us + verify_us,
            tokens[0].len()
        );
    }
}
