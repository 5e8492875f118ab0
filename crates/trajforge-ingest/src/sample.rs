//! Deterministic shuffling and sampling, stable across platforms and releases.
//!
//! A hand-written SplitMix64 generator keeps samples reproducible forever for a given
//! seed: a general-purpose RNG crate may change its streams between versions.

/// SplitMix64: small, fast, and good enough to drive a Fisher-Yates shuffle.
struct SplitMix64(u64);

impl SplitMix64 {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// Uniform in `0..bound` (bound > 0), without modulo bias.
    fn below(&mut self, bound: u64) -> u64 {
        let zone = u64::MAX - (u64::MAX % bound);
        loop {
            let x = self.next();
            if x < zone {
                return x % bound;
            }
        }
    }
}

/// Shuffle `items` in place, deterministically for `seed`.
pub fn shuffle<T>(items: &mut [T], seed: u64) {
    let mut rng = SplitMix64(seed);
    for i in (1..items.len()).rev() {
        let j = rng.below(i as u64 + 1) as usize;
        items.swap(i, j);
    }
}

/// Shuffle `items` with `seed` and keep the first `n` (all when fewer).
pub fn sample<T>(items: &mut Vec<T>, n: usize, seed: u64) {
    shuffle(items, seed);
    items.truncate(n);
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn same_seed_same_order_and_known_stream() {
        let mut a: Vec<u32> = (0..20).collect();
        let mut b = a.clone();
        shuffle(&mut a, 7);
        shuffle(&mut b, 7);
        assert_eq!(a, b);
        assert_ne!(a, (0..20).collect::<Vec<_>>());
        // The stream is part of the contract: a sample drawn today is drawn again tomorrow.
        assert_eq!(SplitMix64(0).next(), 0xE220_A839_7B1D_CDAF);
    }

    #[test]
    fn different_seeds_differ() {
        let mut a: Vec<u32> = (0..50).collect();
        let mut b = a.clone();
        shuffle(&mut a, 1);
        shuffle(&mut b, 2);
        assert_ne!(a, b);
    }

    proptest! {
        #[test]
        fn sample_is_a_subset_without_repeats(len in 0usize..200, n in 0usize..250, seed: u64) {
            let mut items: Vec<usize> = (0..len).collect();
            sample(&mut items, n, seed);
            prop_assert_eq!(items.len(), n.min(len));
            let mut sorted = items.clone();
            sorted.sort_unstable();
            sorted.dedup();
            prop_assert_eq!(sorted.len(), items.len());
            prop_assert!(items.iter().all(|&i| i < len));
        }

        #[test]
        fn smaller_sample_is_prefix_of_larger(len in 0usize..100, n in 0usize..100, seed: u64) {
            let mut all: Vec<usize> = (0..len).collect();
            let mut some = all.clone();
            sample(&mut all, len, seed);
            sample(&mut some, n, seed);
            prop_assert_eq!(&all[..some.len()], &some[..]);
        }
    }
}
