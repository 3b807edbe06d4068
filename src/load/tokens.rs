//! The load engine's tokens, kept compactly. A device's token is its claims (rebuilt from the
//! device's identity, the signing time and the profile's lifetime: the same bytes every time)
//! and a signature; only the signature and the signing time are stored, and the compact JWS
//! is written out when a REGISTER carries it. 1,000,000 EdDSA tokens take 64 MB of
//! signatures where their text would take about 300 MB (and twice that with a renewal held).
//!
//! The first token of every device is signed before the run's schedule starts, in parallel,
//! into a [`TokenBank`] (the runtime splits [`TokenBank::shares_mut`] over threads); renewals
//! are signed ahead of need by the engine (`Engine::mint_ahead`). Nothing here reads a clock:
//! the signing time comes in.

use crate::auth::{Signer, TokenClaims};

/// The claims of device `user`'s token signed at `iat_s` (seconds): what the engine mints.
pub fn device_claims<'a>(
    user: &'a str,
    device: &'a str,
    iat_s: u64,
    ttl_s: u64,
) -> TokenClaims<'a> {
    TokenClaims {
        sub: user,
        exp: iat_s + ttl_s,
        iat: iat_s,
        dev: Some(device),
        ..TokenClaims::default()
    }
}

/// A token a device holds or will hold: when it was signed (µs) and its signature.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Minted {
    /// Signing time (µs); the claims carry it in seconds (`iat`, `exp = iat + ttl`).
    pub at_us: u64,
    pub sig: Signature,
}

/// Where a token's signature is.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Signature {
    /// In the run's [`TokenBank`], at the device's number.
    Bank,
    /// Its own (a renewal, or a token signed in the send path).
    Own(Box<[u8]>),
}

/// The first token of each device of a run, signed before the schedule starts: one signing
/// time for all, one signature per device in a flat array.
#[derive(Clone, Debug)]
pub struct TokenBank {
    /// Signing time (µs) of every token in the bank.
    at_us: u64,
    ttl_s: u64,
    user_start: u64,
    sig_len: usize,
    sigs: Vec<u8>,
}

impl TokenBank {
    /// An unsigned bank for devices `0..devices` (user numbers from `user_start`), signed at
    /// `at_us` with `signer`'s key; fill it with [`TokenBank::shares_mut`] and [`sign_share`].
    pub fn new(signer: &Signer, devices: u64, user_start: u64, ttl_s: u64, at_us: u64) -> Self {
        let sig_len = signer.signature_len();
        TokenBank {
            at_us,
            ttl_s,
            user_start,
            sig_len,
            sigs: vec![0; sig_len * devices as usize],
        }
    }

    /// A bank signed here, on one thread (tests, small runs).
    pub fn signed(signer: &Signer, devices: u64, user_start: u64, ttl_s: u64, at_us: u64) -> Self {
        let mut bank = TokenBank::new(signer, devices, user_start, ttl_s, at_us);
        for share in bank.shares_mut(1) {
            share.sign(signer);
        }
        bank
    }

    /// Devices in the bank.
    pub fn len(&self) -> usize {
        self.sigs.len() / self.sig_len.max(1)
    }

    pub fn is_empty(&self) -> bool {
        self.sigs.is_empty()
    }

    /// When the bank's tokens were signed (µs).
    pub fn signed_at_us(&self) -> u64 {
        self.at_us
    }

    /// Bytes the bank holds.
    pub fn bytes(&self) -> usize {
        self.sigs.len()
    }

    /// The bank cut into `parts` disjoint shares of consecutive devices, to be signed in
    /// parallel.
    pub fn shares_mut(&mut self, parts: usize) -> Vec<Share<'_>> {
        let n = self.len();
        let per = n.div_ceil(parts.max(1)).max(1);
        let (at_us, ttl_s, user_start, sig_len) =
            (self.at_us, self.ttl_s, self.user_start, self.sig_len);
        self.sigs
            .chunks_mut(per * sig_len)
            .enumerate()
            .map(|(k, sigs)| Share {
                first: (k * per) as u64,
                at_us,
                ttl_s,
                user_start,
                sig_len,
                sigs,
            })
            .collect()
    }

    /// Device `number`'s signature.
    pub fn signature(&self, number: u64) -> Option<&[u8]> {
        let at = number as usize * self.sig_len;
        self.sigs.get(at..at + self.sig_len)
    }
}

/// A part of a [`TokenBank`] to sign.
#[derive(Debug)]
pub struct Share<'a> {
    first: u64,
    at_us: u64,
    ttl_s: u64,
    user_start: u64,
    sig_len: usize,
    sigs: &'a mut [u8],
}

impl Share<'_> {
    /// Tokens in this share.
    pub fn len(&self) -> usize {
        self.sigs.len() / self.sig_len.max(1)
    }

    pub fn is_empty(&self) -> bool {
        self.sigs.is_empty()
    }

    /// Signs every token of the share (the claims template filled in per device; the
    /// signature is the only per-token work worth counting).
    pub fn sign(self, signer: &Signer) {
        let mut input = String::with_capacity(256);
        let mut user = String::new();
        let mut device = String::new();
        let iat_s = self.at_us / 1_000_000;
        for (k, out) in self.sigs.chunks_exact_mut(self.sig_len).enumerate() {
            use std::fmt::Write as _;
            user.clear();
            device.clear();
            let number = self.user_start + self.first + k as u64;
            let _ = write!(user, "{number}");
            let _ = write!(device, "CSF{number}");
            input.clear();
            signer.signing_input(
                &device_claims(&user, &device, iat_s, self.ttl_s),
                &mut input,
            );
            let sig = signer.sign(input.as_bytes());
            let n = sig.len().min(out.len());
            out[..n].copy_from_slice(&sig[..n]);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::auth::{generate_pkcs8, Alg, KeySet, Policy, Verifier};
    use std::sync::Arc;

    #[test]
    fn a_bank_token_is_the_token_the_signer_mints_and_it_verifies() {
        let signer = Signer::from_pkcs8(&generate_pkcs8(Alg::EdDSA).unwrap(), "k").unwrap();
        let at_us = 1_800_000_000_123_456;
        // Signed in three shares, as threads would.
        let mut bank = TokenBank::new(&signer, 7, 1_000_000, 3600, at_us);
        let shares = bank.shares_mut(3);
        assert_eq!(shares.iter().map(Share::len).collect::<Vec<_>>(), [3, 3, 1]);
        for s in shares {
            s.sign(&signer);
        }
        let keys = Arc::new(KeySet::new(vec![signer.public_key().clone()]));
        let mut v = Verifier::new(keys, Policy::default(), 100);
        for number in 0..7u64 {
            let user = (1_000_000 + number).to_string();
            let device = format!("CSF{user}");
            let claims = device_claims(&user, &device, at_us / 1_000_000, 3600);
            let mut text = String::new();
            signer.write_token(&claims, bank.signature(number).unwrap(), &mut text);
            // Ed25519 is deterministic: the same bytes as a token minted whole.
            assert_eq!(text, signer.mint(&claims));
            let t = v.verify(text.as_bytes(), at_us / 1_000_000 + 10).unwrap();
            assert_eq!(t.exp, at_us / 1_000_000 + 3600);
        }
        assert_eq!(bank.signature(7), None);
    }
}
