//! Stable hashes, fingerprints and seeded draws, written once.
//!
//! Everything here is part of the on-disk contract: run folders store fingerprints of their
//! menu, demonstrations and prompts, job keys are drawn from with [`draw`], samples are
//! shuffled with [`shuffle`], and the sandbox work folder is named by [`fnv1a64`] of the
//! repository path. A resumed run recomputes them and refuses (or silently diverges) when
//! they differ, so none of them may change between releases. They are hand-written because
//! std's hasher and general-purpose RNG crates make no such promise.
//!
//! - [`Fnv1a64`] / [`fnv1a64`]: FNV-1a, 64-bit, streaming and one-shot.
//! - [`fingerprint`]: FNV-1a over the compact JSON of a serialisable value, as 16 hex digits.
//! - [`SplitMix64`] and its finaliser [`mix64`]: a tiny, fully specified random stream.
//! - [`shuffle`]: Fisher–Yates driven by SplitMix64.
//! - [`draw`]: a deterministic choice in `0..n` from a seed, a job key, an attempt and a purpose.

use serde::Serialize;

/// FNV-1a 64 offset basis.
const FNV_OFFSET: u64 = 0xcbf2_9ce4_8422_2325;
/// FNV-1a 64 prime.
const FNV_PRIME: u64 = 0x0000_0100_0000_01b3;

/// FNV-1a, 64-bit, fed incrementally.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Fnv1a64(u64);

impl Default for Fnv1a64 {
    fn default() -> Self {
        Self::new()
    }
}

impl Fnv1a64 {
    /// A hasher at the standard offset basis.
    pub const fn new() -> Self {
        Fnv1a64(FNV_OFFSET)
    }

    /// A hasher whose offset basis is XORed with `seed` (the start of [`draw`]).
    pub const fn seeded(seed: u64) -> Self {
        Fnv1a64(FNV_OFFSET ^ seed)
    }

    /// Feeds `bytes`.
    pub fn write(&mut self, bytes: &[u8]) {
        for &b in bytes {
            self.write_u8(b);
        }
    }

    /// Feeds one byte.
    pub fn write_u8(&mut self, byte: u8) {
        self.0 ^= u64::from(byte);
        self.0 = self.0.wrapping_mul(FNV_PRIME);
    }

    /// Feeds `bytes` prefixed by their decimal length and a colon, so that consecutive
    /// fields cannot run into each other ("ab","c" differs from "a","bc").
    pub fn write_field(&mut self, bytes: &[u8]) {
        self.write(bytes.len().to_string().as_bytes());
        self.write(b":");
        self.write(bytes);
    }

    /// The digest so far.
    pub const fn finish(&self) -> u64 {
        self.0
    }

    /// The digest so far as 16 lower-case hex digits.
    pub fn hex(&self) -> String {
        format!("{:016x}", self.0)
    }
}

/// FNV-1a 64 of `bytes` in one call.
pub fn fnv1a64(bytes: &[u8]) -> u64 {
    let mut h = Fnv1a64::new();
    h.write(bytes);
    h.finish()
}

/// A stable digest of any serialisable value: FNV-1a over its compact JSON, 16 hex digits.
///
/// A value that cannot be serialised hashes as the empty string.
pub fn fingerprint<T: Serialize + ?Sized>(value: &T) -> String {
    let text = serde_json::to_string(value).unwrap_or_default();
    let mut h = Fnv1a64::new();
    h.write(text.as_bytes());
    h.hex()
}

/// SplitMix64's golden-ratio increment.
const GAMMA: u64 = 0x9E37_79B9_7F4A_7C15;

/// The SplitMix64 finaliser: spreads every input bit over the whole output.
pub const fn mix64(mut z: u64) -> u64 {
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

/// SplitMix64: small, fast, and good enough to drive a Fisher–Yates shuffle.
#[derive(Debug, Clone)]
pub struct SplitMix64(u64);

impl SplitMix64 {
    /// A generator whose state starts at `seed`.
    pub const fn new(seed: u64) -> Self {
        SplitMix64(seed)
    }

    /// The next number of the stream.
    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(GAMMA);
        mix64(self.0)
    }

    /// Uniform in `0..bound` (`bound` > 0), without modulo bias.
    pub fn below(&mut self, bound: u64) -> u64 {
        let zone = u64::MAX - (u64::MAX % bound);
        loop {
            let x = self.next_u64();
            if x < zone {
                return x % bound;
            }
        }
    }
}

/// Shuffles `items` in place (Fisher–Yates from the back), deterministically for `seed`.
pub fn shuffle<T>(items: &mut [T], seed: u64) {
    let mut rng = SplitMix64::new(seed);
    for i in (1..items.len()).rev() {
        let j = rng.below(i as u64 + 1) as usize;
        items.swap(i, j);
    }
}

/// A deterministic draw in `0..n` (0 when `n` is 0) from the seed, the job, the attempt and
/// the purpose: FNV-1a seeded with `seed` over `key`, a NUL, `purpose` and `attempt`
/// (little-endian), finalised with [`mix64`] before the modulo.
pub fn draw(seed: u64, key: &str, attempt: u32, purpose: &str, n: usize) -> usize {
    let mut h = Fnv1a64::seeded(seed);
    h.write(key.as_bytes());
    h.write_u8(0);
    h.write(purpose.as_bytes());
    h.write(&attempt.to_le_bytes());
    (mix64(h.finish()) % n.max(1) as u64) as usize
}

#[cfg(test)]
mod tests;
