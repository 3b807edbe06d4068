//! Who sends when, sans-IO: device identities (stable per device, reproducible from the seed),
//! start times spread over the ramp, and the open-loop schedule (intended send times at a
//! fixed rate, each turn going to the next idle device).

use super::device::Device;
use super::profile::Profile;

/// What stays the same for a device through a run: its user, Call-ID, tags, UUIDs, name.
///
/// Built on the stack from the device's number and the run's seed whenever a REGISTER is
/// written, not kept per device: as six heap strings they were some 330 bytes per device, and
/// in a storm of a million devices reading them back was a cache miss per string per REGISTER.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Identity {
    text: [u8; ID_TEXT],
    /// Where each part ends in `text`: user, Call-ID, From tag, Contact user, instance, name.
    ends: [u8; 6],
}

/// The longest identity: the user number (up to 20 digits) as the user and in the device
/// name, the Call-ID, the From tag and the two UUIDs.
const ID_TEXT: usize = 20 + CALL_ID + 16 + 36 + INSTANCE + 3 + 20;
const CALL_ID: usize = 8 + 1 + 8 + 1 + 8 + CALL_ID_HOST.len();
const CALL_ID_HOST: &str = "@10.0.0.1";
const INSTANCE: usize = "<urn:uuid:>".len() + 36;

use crate::mix::splitmix64 as splitmix;

/// The 8 hex digits of `v` (lowercase), computed in one register: each nibble spread to a
/// byte, then moved to its ASCII digit or letter (an identity is built per REGISTER, and
/// a table look-up per digit was most of its cost).
fn hex8(v: u32) -> [u8; 8] {
    let mut x = u64::from(v);
    x = ((x & 0xffff_0000) << 16) | (x & 0xffff);
    x = ((x & 0x0000_ff00_0000_ff00) << 8) | (x & 0x0000_00ff_0000_00ff);
    x = ((x & 0x00f0_00f0_00f0_00f0) << 4) | (x & 0x000f_000f_000f_000f);
    // 1 in each byte whose nibble is above 9: it becomes a letter ('a' is '0' + 10 + 39).
    let letters = ((x + 0x0606_0606_0606_0606) >> 4) & 0x0101_0101_0101_0101;
    (x + 0x3030_3030_3030_3030 + letters * 39).to_be_bytes()
}

/// The 16 hex digits of `v` (lowercase).
fn hex16(v: u64) -> [u8; 16] {
    let mut out = [0u8; 16];
    out[..8].copy_from_slice(&hex8((v >> 32) as u32));
    out[8..].copy_from_slice(&hex8(v as u32));
    out
}

fn put(out: &mut [u8], at: usize, s: &[u8]) -> usize {
    out[at..at + s.len()].copy_from_slice(s);
    at + s.len()
}

/// 128 bits (`a`, then `b`) written as a UUID (8-4-4-4-12 lowercase hex digits) at `at`.
fn put_uuid(out: &mut [u8], at: usize, a: u64, b: u64) -> usize {
    let (a, b) = (hex16(a), hex16(b));
    let mut at = put(out, at, &a[..8]);
    at = put(out, at, b"-");
    at = put(out, at, &a[8..12]);
    at = put(out, at, b"-");
    at = put(out, at, &a[12..]);
    at = put(out, at, b"-");
    at = put(out, at, &b[..4]);
    at = put(out, at, b"-");
    put(out, at, &b[4..])
}

/// 128 bits (`a`, then `b`) written as a UUID: 8-4-4-4-12 lowercase hex digits.
pub fn uuid(a: u64, b: u64) -> String {
    let mut text = [0u8; 36];
    put_uuid(&mut text, 0, a, b);
    text.iter().map(|&c| char::from(c)).collect()
}

/// The device's random parts: `k` picks which.
fn random_part(seed: u64, user: u64, k: u64) -> u64 {
    splitmix(seed ^ splitmix(user ^ (k << 56)))
}

/// The Call-ID of user number `user` (its third group the user's low 32 bits, see
/// [`call_id_user`]) at `at`.
fn put_call_id(out: &mut [u8], at: usize, seed: u64, user: u64) -> usize {
    let mut at = put(out, at, &hex8(random_part(seed, user, 1) as u32));
    at = put(out, at, b"-");
    at = put(out, at, &hex8(random_part(seed, user, 2) as u32));
    at = put(out, at, b"-");
    at = put(out, at, &hex8(user as u32));
    put(out, at, CALL_ID_HOST.as_bytes())
}

impl Identity {
    /// Device number `index` (0-based) of a run with `seed`.
    pub fn new(user_start: u64, index: u64, seed: u64) -> Identity {
        let user = user_start + index;
        let r = |k: u64| random_part(seed, user, k);
        let mut text = [0u8; ID_TEXT];
        let mut ends = [0u8; 6];
        let mut digits = itoa::Buffer::new();
        let number = digits.format(user).as_bytes();
        let mut at = put(&mut text, 0, number);
        ends[0] = at as u8;
        at = put_call_id(&mut text, at, seed, user);
        ends[1] = at as u8;
        at = put(&mut text, at, &hex16(r(3)));
        ends[2] = at as u8;
        at = put_uuid(&mut text, at, r(4), r(5));
        ends[3] = at as u8;
        at = put(&mut text, at, b"<urn:uuid:");
        at = put_uuid(&mut text, at, r(6), r(7));
        at = put(&mut text, at, b">");
        ends[4] = at as u8;
        at = put(&mut text, at, b"CSF");
        at = put(&mut text, at, number);
        ends[5] = at as u8;
        Identity { text, ends }
    }

    fn part(&self, k: usize) -> &str {
        let from = if k == 0 {
            0
        } else {
            usize::from(self.ends[k - 1])
        };
        // Only ASCII digits, letters and punctuation are ever written.
        std::str::from_utf8(&self.text[from..usize::from(self.ends[k])]).unwrap_or_default()
    }

    /// The user number, in decimal.
    pub fn user(&self) -> &str {
        self.part(0)
    }

    pub fn call_id(&self) -> &str {
        self.part(1)
    }

    pub fn from_tag(&self) -> &str {
        self.part(2)
    }

    /// The Contact's user part (Jabber uses a UUID).
    pub fn contact_user(&self) -> &str {
        self.part(3)
    }

    /// `<urn:uuid:...>`.
    pub fn instance(&self) -> &str {
        self.part(4)
    }

    /// Cisco device name, e.g. `CSF1000000`.
    pub fn device(&self) -> &str {
        self.part(5)
    }

    /// Whether `call_id` is the Call-ID of device number `index` (what [`Identity::call_id`]
    /// says, without building the rest).
    pub fn is_call_id(user_start: u64, index: u64, seed: u64, call_id: &[u8]) -> bool {
        let mut text = [0u8; CALL_ID];
        put_call_id(&mut text, 0, seed, user_start + index);
        text[..] == *call_id
    }
}

/// The user number's low 32 bits, read back from a Call-ID [`Identity::new`] made (its third
/// group of hex digits): how the engine finds the device an answer is for without a map of
/// every Call-ID. Anything else gives `None`.
pub fn call_id_user(call_id: &[u8]) -> Option<u32> {
    if call_id.len() < 27 || call_id[8] != b'-' || call_id[17] != b'-' || call_id[26] != b'@' {
        return None;
    }
    call_id[18..26].iter().try_fold(0u32, |n, &b| {
        let d = (b as char).to_digit(16)?;
        Some(n << 4 | d)
    })
}

/// A new Via branch (RFC 3261 magic cookie + request-unique digits).
pub fn branch(seed: u64, device: u64, cseq: u32) -> Branch {
    let v = splitmix(seed ^ splitmix(device) ^ (u64::from(cseq) << 40));
    let mut b = *b"z9hG4bK0000000000000000";
    b[7..].copy_from_slice(&hex16(v));
    Branch(b)
}

/// A Via branch, kept inline (one is made per request): the RFC 3261 magic cookie
/// `z9hG4bK` and 16 lowercase hex digits.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Branch([u8; 23]);

impl Branch {
    pub fn as_str(&self) -> &str {
        std::str::from_utf8(&self.0).expect("ASCII by construction")
    }
}

impl std::fmt::Display for Branch {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The order in which a fleet arrives over the ramp: a fixed permutation of the device
/// numbers (n -> n x stride mod devices, the stride coprime with the count and near its golden
/// section), so that every contiguous range of numbers, which is one connection's devices or
/// one engine core's, is spread over the whole ramp. A fleet behind 100 Expressway-C
/// connections arrives over all of them at once; in number order, each connection's devices
/// came in one burst after another, and each engine core's in its own half of the ramp.
#[derive(Clone, Copy, Debug)]
pub struct RampOrder {
    devices: u64,
    stride: u64,
}

impl RampOrder {
    pub fn new(devices: u64) -> Self {
        let mut stride = ((devices as f64 * 0.618_033_988_75) as u64).max(1);
        while gcd(stride, devices.max(1)) != 1 {
            stride += 1;
        }
        RampOrder { devices, stride }
    }

    /// Device `number`'s place in the ramp (0 first, `devices - 1` last).
    pub fn place(&self, number: u64) -> u64 {
        if self.devices <= 1 {
            return 0;
        }
        (u128::from(number % self.devices) * u128::from(self.stride) % u128::from(self.devices))
            as u64
    }
}

fn gcd(mut a: u64, mut b: u64) -> u64 {
    while b != 0 {
        (a, b) = (b, a % b);
    }
    a
}

/// When the device at `index` of `devices` in the ramp's order starts (µs): spread evenly
/// over the ramp (see [`RampOrder`] for which device that is).
pub fn start_us(run_start_us: u64, ramp_s: u64, devices: u64, index: u64) -> u64 {
    if devices <= 1 {
        return run_start_us;
    }
    run_start_us + ramp_s * 1_000_000 * index / devices
}

/// The open-loop schedule (µs): turn `k` is intended at `start + k / rate`; a turn goes to the next
/// device (round robin) that is connected and has nothing in flight. A turn that finds every
/// device busy is [`Turn::Missed`] here: the engine keeps it waiting for the first device to
/// free ([`OpenLoop::pick`]) and sends it late, timed from its intended time; one still
/// waiting when the run ends is a missed send.
#[derive(Clone, Debug)]
pub struct OpenLoop {
    start_us: u64,
    /// Turns per microsecond.
    rate_per_us: f64,
    next_turn: u64,
    cursor: usize,
}

/// A turn due now.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Turn {
    /// Device `index` sends, with this intended time.
    Send { index: usize, intended_us: u64 },
    /// No idle device for the turn intended at this time (yet: the engine holds it until one
    /// frees).
    Missed { intended_us: u64 },
}

impl OpenLoop {
    pub fn new(start_us: u64, rate_per_s: f64) -> Self {
        OpenLoop {
            start_us,
            rate_per_us: rate_per_s / 1e6,
            next_turn: 0,
            cursor: 0,
        }
    }

    /// The intended time of the next turn.
    pub fn next_at(&self) -> u64 {
        if self.rate_per_us <= 0.0 {
            return u64::MAX;
        }
        self.start_us + (self.next_turn as f64 / self.rate_per_us) as u64
    }

    /// Turns offered so far.
    pub fn offered(&self) -> u64 {
        self.next_turn
    }

    /// The next turn if it is due at `now_us`; `idle(i)` says whether device `i` can send.
    pub fn next(
        &mut self,
        now_us: u64,
        devices: usize,
        idle: impl FnMut(usize) -> bool,
    ) -> Option<Turn> {
        let intended_us = self.next_at();
        if now_us < intended_us || devices == 0 {
            return None;
        }
        self.next_turn += 1;
        Some(match self.pick(devices, idle) {
            Some(index) => Turn::Send { index, intended_us },
            None => Turn::Missed { intended_us },
        })
    }

    /// The next turn's intended time if it is due at `now_us`, taken without looking for a
    /// device (it joins turns already waiting for one).
    pub fn take_due(&mut self, now_us: u64) -> Option<u64> {
        let intended_us = self.next_at();
        if now_us < intended_us {
            return None;
        }
        self.next_turn += 1;
        Some(intended_us)
    }

    /// The next idle device, round robin from the last one given a turn.
    pub fn pick(&mut self, devices: usize, mut idle: impl FnMut(usize) -> bool) -> Option<usize> {
        for step in 0..devices {
            let i = (self.cursor + step) % devices;
            if idle(i) {
                self.cursor = (i + 1) % devices;
                return Some(i);
            }
        }
        None
    }
}

/// Devices for a profile, each starting at its place in the ramp.
pub fn devices(p: &Profile, run_start_us: u64) -> Vec<Device> {
    let order = RampOrder::new(p.devices);
    (0..p.devices)
        .map(|i| {
            Device::new(
                p.timing(),
                start_us(run_start_us, p.ramp_s, p.devices, order.place(i)),
                splitmix(p.seed ^ i),
            )
        })
        .collect()
}
