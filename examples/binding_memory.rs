//! Resident memory per registered Jabber device: N distinct devices (each its own AOR, contact
//! UUID, `+sip.instance`, device name, address, Call-ID, connection and Ed25519 token) send the
//! seed's REGISTER through `Registrar::handle`. RSS is read after a warm-up, after the token
//! cache holds every device's token, and after every device is bound, so the delta per device
//! is split into token cache and bindings.
//!
//!   cargo run --release --example binding_memory -- 1000000

use regstorm::auth::{generate_pkcs8, Alg, KeySet, Policy, Signer, TokenClaims, Verifier};
use regstorm::config::{ListenerKind, RegistrarSection};
use regstorm::load::jabber::{cisco_body, Register};
use regstorm::load::schedule;
use regstorm::mix::splitmix64 as mix;
use regstorm::registrar::{Facts, Outcome, Registrar};
use regstorm::sip::{Frame, Framer, Limits, EMPTY_HEADER};
use std::sync::Arc;
use std::time::Instant;

#[global_allocator]
static GLOBAL: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

const NOW: u64 = 1_800_000_000;

fn rss_bytes() -> u64 {
    let statm = std::fs::read_to_string("/proc/self/statm").expect("/proc/self/statm");
    let pages: u64 = statm
        .split_whitespace()
        .nth(1)
        .and_then(|v| v.parse().ok())
        .expect("statm field 2");
    pages * 4096
}

fn uuid(seed: u64) -> String {
    schedule::uuid(mix(seed), mix(seed ^ 0x5555))
}

/// Device `i`'s identity, as Jabber would send it.
struct Device {
    user: String,
    device: String,
    local: String,
    contact_user: String,
    instance: String,
    call_id: String,
    branch: String,
    from_tag: String,
}

impl Device {
    fn new(i: u64) -> Device {
        let user = format!("{}", 1_000_000 + i);
        let ip = format!("10.{}.{}.{}", (i >> 16) & 255, (i >> 8) & 255, i & 255);
        let h = mix(i);
        Device {
            device: format!("CSF{user}"),
            local: format!("{ip}:{}", 49152 + (h % 16384)),
            contact_user: uuid(i),
            instance: format!("<urn:uuid:{}>", uuid(i + (1 << 40))),
            call_id: format!(
                "{:08x}-{:08x}-{:08x}-{:08x}@{ip}",
                h >> 32,
                h & 0xffff_ffff,
                mix(h) >> 32,
                i
            ),
            branch: format!("z9hG4bK{:08x}", h & 0xffff_ffff),
            from_tag: format!("{:016x}-{:08x}", mix(h), i),
            user,
        }
    }

    fn token(&self, signer: &Signer) -> String {
        signer.mint(&TokenClaims {
            sub: &self.user,
            exp: NOW + 86_400,
            iat: NOW,
            dev: Some(&self.device),
            ..TokenClaims::default()
        })
    }

    fn write(&self, token: &str, body: &[u8], out: &mut Vec<u8>) {
        let mut r = Register::seed("");
        r.user = &self.user;
        r.local = &self.local;
        r.branch = &self.branch;
        r.from_tag = &self.from_tag;
        r.call_id = &self.call_id;
        r.cseq = 1;
        r.contact_user = &self.contact_user;
        r.instance = &self.instance;
        r.device = &self.device;
        r.token = Some(token);
        out.clear();
        r.write(out, body);
    }
}

fn register(
    registrar: &mut Registrar,
    framer: &mut Framer,
    wire: &[u8],
    conn: u64,
    out: &mut Vec<u8>,
) {
    let mut hs = [EMPTY_HEADER; 64];
    let Ok(Frame::Message(m)) = framer.next(wire, &mut hs) else {
        panic!("framing")
    };
    let facts = Facts {
        listener: ListenerKind::Oauth,
        conn,
        source: None,
    };
    out.clear();
    let outcome = registrar.handle(&m, &facts, NOW, out);
    assert_eq!(
        outcome,
        Outcome::Replied(200),
        "{}",
        String::from_utf8_lossy(out)
    );
}

fn main() {
    let n: u64 = std::env::args()
        .nth(1)
        .map_or(1_000_000, |a| a.parse().expect("N"));
    const WARM: u64 = 2_000;
    let signer = Signer::from_pkcs8(&generate_pkcs8(Alg::EdDSA).unwrap(), "k").unwrap();
    let keys = Arc::new(KeySet::new(vec![signer.public_key().clone()]));
    let verifier = Verifier::new(keys, Policy::default(), (n + WARM) as usize);
    let cfg = RegistrarSection {
        domain: Some("10.10.10.1".into()),
        cores: 1,
        ..RegistrarSection::default()
    };
    let mut registrar = Registrar::new(cfg, verifier);
    let body = cisco_body();
    let mut framer = Framer::new(Limits::default());
    let (mut wire, mut out) = (Vec::with_capacity(8192), Vec::with_capacity(8192));

    // One token per device, minted before anything is measured.
    let t = Instant::now();
    let tokens: Vec<String> = (0..n + WARM)
        .map(|i| Device::new(i).token(&signer))
        .collect();
    println!(
        "minted {} Ed25519 tokens in {:.1} s ({} octets each)",
        n + WARM,
        t.elapsed().as_secs_f64(),
        tokens[0].len()
    );

    // Warm-up: devices that register and leave (their connections close), so allocator arenas
    // and the table's stripes have seen traffic before the first reading.
    for i in n..n + WARM {
        Device::new(i).write(&tokens[i as usize], &body, &mut wire);
        register(&mut registrar, &mut framer, &wire, i, &mut out);
    }
    for i in n..n + WARM {
        registrar.connection_closed(i);
    }
    assert!(registrar.bindings().is_empty());
    let rss0 = rss_bytes();

    // Token cache: every device's token verified once.
    let t = Instant::now();
    for token in &tokens[..n as usize] {
        assert!(registrar.verifier().verify(token.as_bytes(), NOW).is_ok());
    }
    let verify_s = t.elapsed().as_secs_f64();
    let rss1 = rss_bytes();

    // Bindings: every device's REGISTER (its token now a cache hit), 200 OK each.
    let t = Instant::now();
    for i in 0..n {
        Device::new(i).write(&tokens[i as usize], &body, &mut wire);
        register(&mut registrar, &mut framer, &wire, i, &mut out);
    }
    let register_s = t.elapsed().as_secs_f64();
    let rss2 = rss_bytes();

    let bindings = registrar.bindings();
    assert_eq!(bindings.len() as u64, n);
    let interned = bindings.interned();
    let per = |a: u64, b: u64| (b as f64 - a as f64) / n as f64;
    println!("devices: {n}, stripes: {}", bindings.stripes());
    println!(
        "interned over all stripes: {} contact templates, {} AOR tails, {} paths",
        interned.templates, interned.aor_tails, interned.paths
    );
    println!(
        "verify {:.1} s ({:.1} us each), register with cached token {:.1} s ({:.2} us each)",
        verify_s,
        verify_s * 1e6 / n as f64,
        register_s,
        register_s * 1e6 / n as f64
    );
    println!("rss after warm-up: {rss0} bytes, after tokens: {rss1}, after bindings: {rss2}");
    println!("token cache per device: {:.1} bytes", per(rss0, rss1));
    println!("bindings per device:    {:.1} bytes", per(rss1, rss2));
    println!("total per device:       {:.1} bytes", per(rss0, rss2));
}
