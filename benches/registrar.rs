//! The sans-IO pipeline per REGISTER: frame and parse the seed's Jabber REGISTER, verify its
//! token (a cache hit), update the binding table, write the 200 OK. One device re-registering
//! (the steady state of a fleet), with a table holding 10,000 other AORs.

use criterion::{black_box, criterion_group, criterion_main, Criterion, Throughput};
use regstorm::auth::{generate_pkcs8, Alg, KeySet, Policy, Signer, TokenClaims, Verifier};
use regstorm::config::{ListenerKind, RegistrarSection};
use regstorm::load::jabber::{cisco_body, Register};
use regstorm::registrar::{Facts, Outcome, Registrar};
use regstorm::sip::{Frame, Framer, Limits, EMPTY_HEADER};
use std::sync::Arc;

#[global_allocator]
static GLOBAL: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

const NOW: u64 = 1_800_000_000;

fn pipeline(c: &mut Criterion) {
    let signer = Signer::from_pkcs8(&generate_pkcs8(Alg::EdDSA).unwrap(), "k").unwrap();
    let keys = Arc::new(KeySet::new(vec![signer.public_key().clone()]));
    let cfg = RegistrarSection {
        domain: Some("10.10.10.1".into()),
        cores: 1,
        ..RegistrarSection::default()
    };
    let mut registrar = Registrar::new(cfg, Verifier::new(keys, Policy::default(), 100_000));
    let facts = Facts {
        listener: ListenerKind::Oauth,
        conn: 1,
        source: None,
    };
    let mut out = Vec::with_capacity(4096);

    // Other devices in the table.
    for i in 0..10_000u32 {
        let user = format!("{}", 2_000_000 + i);
        let token = signer.mint(&TokenClaims {
            sub: &user,
            exp: NOW + 3600,
            iat: NOW,
            ..TokenClaims::default()
        });
        let token: &'static str = Box::leak(token.into_boxed_str());
        let user: &'static str = Box::leak(user.into_boxed_str());
        let mut r = Register::seed(token);
        r.user = user;
        r.body = false;
        let mut wire = Vec::new();
        r.write(&mut wire, &[]);
        let mut hs = [EMPTY_HEADER; 64];
        let Ok(Frame::Message(m)) = Framer::new(Limits::default()).next(&wire, &mut hs) else {
            panic!()
        };
        out.clear();
        assert_eq!(
            registrar.handle(&m, &facts, NOW, &mut out),
            Outcome::Replied(200)
        );
    }

    let token = signer.mint(&TokenClaims {
        sub: "1010",
        exp: NOW + 3600,
        iat: NOW,
        dev: Some("CSFrado"),
        ..TokenClaims::default()
    });
    let token: &'static str = Box::leak(token.into_boxed_str());
    let body = cisco_body();
    // Two requests with different Call-IDs, alternating: each replaces the binding the other
    // left (a Call-ID change is always applied, RFC 3261 §10.3 step 7), so every iteration
    // takes the full update path without CSeq bookkeeping in the loop.
    let wires: Vec<Vec<u8>> = [
        "88232345-12340017-00001c0b-00000cfa@10.10.10.10",
        "88232345-12340017-00001c0b-00000cfb@10.10.10.10",
    ]
    .iter()
    .map(|call_id| {
        let mut r = Register::seed(token);
        r.call_id = call_id;
        let mut w = Vec::new();
        r.write(&mut w, &body);
        w
    })
    .collect();
    let mut framer = Framer::new(Limits::default());
    let mut i = 0usize;
    let mut run = |registrar: &mut Registrar, out: &mut Vec<u8>| {
        let wire = &wires[i % wires.len()];
        i += 1;
        let mut hs = [EMPTY_HEADER; 64];
        let Ok(Frame::Message(m)) = framer.next(wire, &mut hs) else {
            panic!("framing")
        };
        out.clear();
        registrar.handle(&m, &facts, NOW, out)
    };
    assert_eq!(run(&mut registrar, &mut out), Outcome::Replied(200));
    assert!(String::from_utf8_lossy(&out).contains("Expires: 120"));

    let mut g = c.benchmark_group("registrar");
    g.throughput(Throughput::Elements(1));
    g.bench_function("register_cached_token_200", |b| {
        b.iter(|| {
            let o = run(&mut registrar, &mut out);
            debug_assert_eq!(o, Outcome::Replied(200));
            black_box((o, out.len()))
        })
    });
    g.finish();
    // The path measured was the success path all along: the next request is still a 200.
    assert_eq!(run(&mut registrar, &mut out), Outcome::Replied(200));
}

criterion_group!(benches, pipeline);
criterion_main!(benches);
