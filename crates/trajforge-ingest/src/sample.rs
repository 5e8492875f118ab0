//! Deterministic shuffling and sampling, stable across platforms and releases.
//!
//! The shuffle is trajforge-hash's SplitMix64-driven Fisher–Yates, so a sample drawn for
//! a seed today is drawn again by every later release.

pub use trajforge_hash::shuffle;

/// Shuffle `items` with `seed` and keep the first `n` (all when fewer).
pub fn sample<T>(items: &mut Vec<T>, n: usize, seed: u64) {
    shuffle(items, seed);
    items.truncate(n);
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    /// `0..len`, shuffled with `seed`.
    fn shuffled(len: u32, seed: u64) -> Vec<u32> {
        let mut items: Vec<u32> = (0..len).collect();
        shuffle(&mut items, seed);
        items
    }

    #[test]
    fn same_seed_same_order_and_known_stream() {
        let a = shuffled(20, 7);
        assert_eq!(a, shuffled(20, 7));
        assert_ne!(a, (0..20).collect::<Vec<_>>());
        // The stream is part of the contract: a sample drawn today is drawn again tomorrow.
        assert_eq!(
            trajforge_hash::SplitMix64::new(0).next_u64(),
            0xE220_A839_7B1D_CDAF
        );
        // And so is the order (recorded from the release that drew today's samples).
        let mut c: Vec<u32> = (0..20).collect();
        sample(&mut c, 5, 3);
        assert_eq!(c, [5, 9, 12, 11, 19]);
    }

    #[test]
    fn different_seeds_differ() {
        assert_ne!(shuffled(50, 1), shuffled(50, 2));
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
