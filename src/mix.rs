//! splitmix64 (Steele, Lea and Flood, 2014): the one mixer behind To tags, reconnect jitter,
//! device identities and the binding table's connection index. Not for secrets.

/// The golden-ratio increment of the splitmix64 stream.
pub const GAMMA: u64 = 0x9e37_79b9_7f4a_7c15;

/// Mixes `z + GAMMA` into 64 well-spread bits.
pub fn splitmix64(z: u64) -> u64 {
    let mut z = z.wrapping_add(GAMMA);
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

/// The next value of a splitmix64 stream whose state is `state` (advanced by `GAMMA`).
pub fn next(state: &mut u64) -> u64 {
    let z = splitmix64(*state);
    *state = state.wrapping_add(GAMMA);
    z
}

#[cfg(test)]
mod tests {
    #[test]
    fn reference_values() {
        // splitmix64 seeded with 0: the first outputs of the reference generator.
        let mut s = 0;
        assert_eq!(super::next(&mut s), 0xe220_a839_7b1d_cdaf);
        assert_eq!(super::next(&mut s), 0x6e78_9e6a_a1b9_65f4);
    }
}
