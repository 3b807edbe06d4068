//! The workload of `benches/registrar.rs`, shared with `examples/registrar_iters.rs` (the
//! callgrind driver) so both measure exactly the same code on the same state. Not a bench
//! target itself: Cargo only discovers `benches/*.rs` and `benches/*/main.rs`.
//!
//! One device re-registering (the steady state of a fleet) against a registrar whose binding
//! table holds 10,000 other AORs and whose token cache holds their 10,000 tokens plus its own.

#![allow(dead_code)] // the bench and the example each use a subset

use regstorm::auth::{generate_pkcs8, Alg, KeySet, Policy, Signer, TokenClaims, Verifier};
use regstorm::config::{ListenerKind, RegistrarSection};
use regstorm::load::jabber::{cisco_body, Register};
use regstorm::registrar::{Facts, Outcome, Registrar};
use regstorm::sip::{Frame, Framer, Limits, EMPTY_HEADER};
use std::sync::Arc;

pub const NOW: u64 = 1_800_000_000;

/// Other devices in the table (and tokens in the cache).
pub const OTHERS: u32 = 10_000;

/// The registrar, its state and the two requests of the timed loop.
#[derive(Debug)]
pub struct Pipeline {
    pub registrar: Registrar,
    pub facts: Facts,
    /// The device's Bearer token (cached by [`Pipeline::new`]).
    pub token: &'static str,
    /// Two requests with different Call-IDs, alternating: each replaces the binding the other
    /// left (a Call-ID change is always applied, RFC 3261 §10.3 step 7), so every iteration
    /// takes the full update path without CSeq bookkeeping in the loop.
    pub wires: Vec<Vec<u8>>,
    /// The connection's framer, reused across iterations.
    pub framer: Framer,
    /// The response buffer, cleared per request.
    pub out: Vec<u8>,
    /// Requests handled: picks the next of `wires`.
    i: usize,
    /// Other devices in the table.
    others: u32,
    /// Requests framed by [`Pipeline::frame`] (its own count, so that framing alone never
    /// makes the next `register` repeat the Call-ID and CSeq of the last one: a 500).
    framed: usize,
}

impl Pipeline {
    /// Builds the registrar, fills it with [`OTHERS`] devices, and registers the device once
    /// (so its token is cached); then checks that one pass answers 200.
    pub fn new() -> Self {
        let signer = Signer::from_pkcs8(&generate_pkcs8(Alg::EdDSA).unwrap(), "k").unwrap();
        Self::build(&signer, &[], OTHERS)
    }

    /// [`Pipeline::new`] with a given signing key (every token the device and the `others`
    /// fillers present), `others` devices in the table, and `extra` keys also in the key set
    /// (a fresh-token workload signs with one of them). With fixed keys every token, and so
    /// every instruction count, is the same from run to run (Ed25519 and RSA PKCS#1 v1.5
    /// signatures are deterministic).
    pub fn build(signer: &Signer, extra: &[&Signer], others: u32) -> Self {
        let mut keys = vec![signer.public_key().clone()];
        keys.extend(extra.iter().map(|s| s.public_key().clone()));
        let keys = Arc::new(KeySet::new(keys));
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

        for i in 0..others {
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
                panic!("framing a filler REGISTER")
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
        let mut p = Pipeline {
            registrar,
            facts,
            token,
            wires,
            framer: Framer::new(Limits::default()),
            out,
            i: 0,
            others,
            framed: 0,
        };
        // The first pass verifies the token (a miss) and caches it.
        assert_eq!(p.register(), Outcome::Replied(200));
        assert!(String::from_utf8_lossy(&p.out).contains("Expires: 120"));
        p.check();
        p
    }

    /// The full path, as the bench times it: frame + parse the next request into a fresh
    /// `[EMPTY_HEADER; 64]`, `Registrar::handle` (token cache hit, table update), 200 written.
    #[inline(never)]
    pub fn register(&mut self) -> Outcome {
        let wire = &self.wires[self.i % self.wires.len()];
        self.i += 1;
        let mut hs = [EMPTY_HEADER; 64];
        let Ok(Frame::Message(m)) = self.framer.next(wire, &mut hs) else {
            panic!("framing")
        };
        self.out.clear();
        self.registrar.handle(&m, &self.facts, NOW, &mut self.out)
    }

    /// Frame + parse `wire` and `Registrar::handle` it, as [`Pipeline::register`] does for its
    /// own requests (the 200 or other answer in `out`).
    #[inline(never)]
    pub fn handle(&mut self, wire: &[u8]) -> Outcome {
        let mut hs = [EMPTY_HEADER; 64];
        let Ok(Frame::Message(m)) = self.framer.next(wire, &mut hs) else {
            panic!("framing")
        };
        self.out.clear();
        self.registrar.handle(&m, &self.facts, NOW, &mut self.out)
    }

    /// `n` REGISTERs of the device, each with a token it never presented before (signed by
    /// `signer`, one second older each), on a Call-ID of their own with rising CSeqs: the
    /// device re-registering right after taking a new token, each one a cache miss.
    pub fn fresh_token_wires(signer: &Signer, n: u32) -> Vec<Vec<u8>> {
        let body = cisco_body();
        (0..n)
            .map(|k| {
                let token = signer.mint(&TokenClaims {
                    sub: "1010",
                    exp: NOW + 3600,
                    iat: NOW - u64::from(k),
                    dev: Some("CSFrado"),
                    ..TokenClaims::default()
                });
                let token: &'static str = Box::leak(token.into_boxed_str());
                let mut r = Register::seed(token);
                r.call_id = "88232345-12340017-00001c0b-00000cfc@10.10.10.10";
                r.cseq = 3000 + k;
                let mut w = Vec::new();
                r.write(&mut w, &body);
                w
            })
            .collect()
    }

    /// `Framer::next` alone on the same bytes (same alternation, same header array), no
    /// registrar: the framing share of [`Pipeline::register`]. Returns the message length.
    #[inline(never)]
    pub fn frame(&mut self) -> usize {
        let wire = &self.wires[self.framed % self.wires.len()];
        self.framed += 1;
        let mut hs = [EMPTY_HEADER; 64];
        let Ok(Frame::Message(m)) = self.framer.next(wire, &mut hs) else {
            panic!("framing")
        };
        m.len()
    }

    /// `Verifier::verify` of the device's token on the registrar's own verifier (a cache hit:
    /// SHA-256 of the token, lookup among 10,001 entries). Returns the token's expiry.
    #[inline(never)]
    pub fn verify_hit(&mut self) -> u64 {
        let v = self
            .registrar
            .verifier()
            .verify(self.token.as_bytes(), NOW)
            .expect("cached token verifies");
        debug_assert!(v.cached);
        v.exp
    }

    /// Asserts that every path measured is its success path: a 200 with the device's binding,
    /// a complete message, a cache hit. Run before and after timing.
    pub fn check(&mut self) {
        for _ in 0..self.wires.len() {
            let o = self.register();
            let reply = String::from_utf8_lossy(&self.out);
            assert_eq!(o, Outcome::Replied(200), "{reply}");
            assert!(reply.starts_with("SIP/2.0 200 "), "{reply}");
            assert!(reply.contains("Expires: 120"), "{reply}");
            assert_eq!(
                self.frame(),
                self.wires[(self.i - 1) % self.wires.len()].len()
            );
        }
        let v = self
            .registrar
            .verifier()
            .verify(self.token.as_bytes(), NOW)
            .expect("cached token verifies");
        assert!(v.cached, "the device's token must be a cache hit");
        assert_eq!(v.exp, NOW + 3600);
        // One binding per other device plus the device's one (replaced, never added to).
        assert_eq!(self.registrar.bindings().len(), self.others as usize + 1);
    }
}
