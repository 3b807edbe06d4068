//! Token verification cost: a signature check per algorithm (a cache miss) against a
//! verified-token cache hit (SHA-256 of the token included), on realistic ~900-byte Jabber
//! tokens, in one run. Goal: a hit costs at most 2 % of an Ed25519 verification.

use criterion::{black_box, criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use regstorm::auth::{decode, generate_pkcs8, Alg, KeySet, Policy, Signer, TokenClaims, Verifier};
use std::sync::Arc;

#[global_allocator]
static GLOBAL: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

const NOW: u64 = 1_800_000_000;

fn signer(alg: Alg) -> Signer {
    let pkcs8 = match alg {
        Alg::RS256 => std::fs::read(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/tests/data/rsa2048.pem"
        ))
        .unwrap(),
        _ => generate_pkcs8(alg).unwrap(),
    };
    Signer::from_pkcs8(&pkcs8, "bench key").unwrap()
}

/// A token shaped like a Unified CM access token: issuer URL, audience, lines, device, scope,
/// client id and a cache key, padded so the whole token is about 900 octets.
fn jabber_token(s: &Signer) -> String {
    let pad = "0".repeat(152);
    let claims = TokenClaims {
        sub: "1010",
        exp: NOW + 3600,
        iat: NOW,
        nbf: Some(NOW),
        iss: Some("https://cucm-pub.example.com:8443/ssosp/oauth"),
        aud: Some("ccmsipline"),
        lines: &["1010", "1011"],
        dev: Some("CSFrado"),
    };
    // Extra claims Unified CM adds, carried through a second JSON object merged in.
    let mut v = serde_json::to_value(&claims).unwrap();
    v["scope"] = "UnifiedCommunications Spark sip:register sip:call".into();
    v["client_id"] = "C16d9d47f5654529b2a6950f19467513".into();
    v["token_type"] = "Self-Contained".into();
    v["jti"] = "1e61a645-99b1-4da5-a7d4-6e657660625c".into();
    v["cache_key"] = pad.into();
    let header = format!(
        r#"{{"alg":"{}","kid":"{}","typ":"JWT"}}"#,
        s.alg().as_str(),
        s.kid()
    );
    use base64::Engine;
    let b64 = base64::engine::general_purpose::URL_SAFE_NO_PAD;
    let input = format!("{}.{}", b64.encode(header), b64.encode(v.to_string()));
    let sig = s.sign(input.as_bytes());
    format!("{input}.{}", b64.encode(sig))
}

fn verify(c: &mut Criterion) {
    let mut g = c.benchmark_group("token");
    for alg in [Alg::EdDSA, Alg::ES256, Alg::RS256] {
        let s = signer(alg);
        let token = jabber_token(&s);
        let keys = Arc::new(KeySet::new(vec![s.public_key().clone()]));
        // A miss: the full path a fresh token takes (decode, signature, claims), with a
        // verifier whose cache is emptied each time so every iteration verifies.
        let mut v = Verifier::new(keys.clone(), Policy::default(), 1);
        assert!(
            v.verify(token.as_bytes(), NOW).is_ok(),
            "{alg:?} token must verify"
        );
        g.throughput(Throughput::Bytes(token.len() as u64));
        g.bench_with_input(BenchmarkId::new("miss", alg.as_str()), &token, |b, t| {
            b.iter(|| {
                v.cache_mut().clear();
                black_box(v.verify(black_box(t.as_bytes()), NOW).map(|t| t.exp))
            })
        });
        if alg == Alg::EdDSA {
            eprintln!("token length: {} octets", token.len());
            // A hit: digest plus lookup, in a cache holding 100,000 other tokens.
            let mut hot = Verifier::new(keys.clone(), Policy::default(), 200_000);
            let filler: Vec<String> = (0..100_000u64)
                .map(|i| format!("{}{i}", &token[..token.len() - 12]))
                .collect();
            for f in &filler {
                // Fillers fail verification (their signatures are garbled), so insert their
                // digests directly as entries of this key.
                let d = regstorm::auth::digest(f.as_bytes());
                hot.cache_mut().insert(
                    d,
                    NOW + 3600,
                    s.public_key().binding_for(Some(s.kid())),
                    Default::default(),
                );
            }
            assert!(hot.verify(token.as_bytes(), NOW).is_ok());
            assert!(hot.verify(token.as_bytes(), NOW).unwrap().cached);
            g.bench_with_input(BenchmarkId::new("hit", alg.as_str()), &token, |b, t| {
                b.iter(|| black_box(hot.verify(black_box(t.as_bytes()), NOW).map(|t| t.exp)))
            });
            g.bench_with_input(
                BenchmarkId::new("decode_only", alg.as_str()),
                &token,
                |b, t| {
                    b.iter(|| black_box(decode(black_box(t.as_bytes())).map(|j| j.payload.len())))
                },
            );
        }
    }
    g.finish();
}

criterion_group!(benches, verify);
criterion_main!(benches);
