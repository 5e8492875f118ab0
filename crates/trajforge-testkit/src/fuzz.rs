//! Fuzzing on stable Rust as ordinary tests: proptest strategies producing hostile byte
//! inputs (arbitrary bytes, and valid seed inputs mutated by byte flips, splices, cuts and
//! repeats), run with a short budget by default and a long one on demand.
//!
//! `TRAJFORGE_FUZZ_CASES=100000 cargo test -p CRATE fuzz` runs each target that many times
//! (default [`DEFAULT_CASES`]); a failing input is shrunk and printed by proptest.

use proptest::prelude::*;
use proptest::test_runner::Config;

/// Cases per fuzz target when `TRAJFORGE_FUZZ_CASES` is not set (the CI budget).
pub const DEFAULT_CASES: u32 = 256;

/// The proptest configuration of a fuzz target: [`DEFAULT_CASES`] or `TRAJFORGE_FUZZ_CASES`,
/// no regression files written into the source tree.
pub fn config() -> Config {
    let cases = std::env::var("TRAJFORGE_FUZZ_CASES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(DEFAULT_CASES);
    Config {
        cases,
        failure_persistence: None,
        ..Config::default()
    }
}

/// One edit of a seed input.
#[derive(Debug, Clone)]
enum Mutation {
    /// Replace the byte at a position (modulo the length).
    Set(usize, u8),
    /// Insert bytes at a position.
    Insert(usize, Vec<u8>),
    /// Remove a range.
    Remove(usize, usize),
    /// Cut the input at a position.
    Truncate(usize),
    /// Repeat a range several times in place.
    Repeat(usize, usize, u8),
}

/// Bytes hostile inputs are often made of: delimiters, quotes, escapes, huge numbers.
const TOKENS: &[&[u8]] = &[
    b"\0",
    b"\"",
    b"\\",
    b"\\u",
    b"{",
    b"}",
    b"[",
    b"]",
    b"<",
    b">",
    b"\n",
    b"\r\n",
    b"@@",
    b"-",
    b"+",
    b"9999999999999999999999",
    b"-1",
    b"\xff\xff\xff\xff",
    b"\xf0\x9f\x98",
    b"\xe2\x80\xae",
];

fn mutation() -> impl Strategy<Value = Mutation> {
    let token = prop_oneof![
        prop::sample::select(TOKENS).prop_map(<[u8]>::to_vec),
        prop::collection::vec(any::<u8>(), 1..16),
    ];
    prop_oneof![
        4 => (any::<usize>(), any::<u8>()).prop_map(|(p, b)| Mutation::Set(p, b)),
        4 => (any::<usize>(), token).prop_map(|(p, t)| Mutation::Insert(p, t)),
        2 => (any::<usize>(), 1usize..64).prop_map(|(p, n)| Mutation::Remove(p, n)),
        1 => any::<usize>().prop_map(Mutation::Truncate),
        1 => (any::<usize>(), 1usize..32, 2u8..64).prop_map(|(p, n, k)| Mutation::Repeat(p, n, k)),
    ]
}

/// Applies `edits` to `seed`.
fn mutate(seed: &[u8], edits: &[Mutation]) -> Vec<u8> {
    let mut out = seed.to_vec();
    for edit in edits {
        let len = out.len();
        let at = |p: usize| if len == 0 { 0 } else { p % (len + 1) };
        match edit {
            Mutation::Set(p, b) if len > 0 => out[p % len] = *b,
            Mutation::Set(..) => out.push(0),
            Mutation::Insert(p, bytes) => {
                let p = at(*p);
                out.splice(p..p, bytes.iter().copied());
            }
            Mutation::Remove(p, n) => {
                let p = at(*p);
                let end = (p + n).min(len);
                out.drain(p..end);
            }
            Mutation::Truncate(p) => out.truncate(at(*p)),
            Mutation::Repeat(p, n, k) => {
                let p = at(*p);
                let end = (p + n).min(len);
                let piece = out[p..end].to_vec();
                for _ in 1..*k {
                    out.splice(end..end, piece.iter().copied());
                }
            }
        }
    }
    out
}

/// Hostile inputs: arbitrary bytes (up to `max_len`), or one of `seeds` with 1 to 8 edits.
pub fn inputs(seeds: Vec<Vec<u8>>, max_len: usize) -> BoxedStrategy<Vec<u8>> {
    let raw = prop::collection::vec(any::<u8>(), 0..max_len.max(1));
    if seeds.is_empty() {
        return raw.boxed();
    }
    let mutated = (
        prop::sample::select(seeds),
        prop::collection::vec(mutation(), 1..8),
    )
        .prop_map(|(seed, edits)| mutate(&seed, &edits));
    prop_oneof![1 => raw, 4 => mutated].boxed()
}

/// Like [`inputs`], decoded lossily as UTF-8 (for parsers that take text).
pub fn text_inputs(seeds: &[&str], max_len: usize) -> BoxedStrategy<String> {
    let seeds = seeds.iter().map(|s| s.as_bytes().to_vec()).collect();
    inputs(seeds, max_len)
        .prop_map(|b| String::from_utf8_lossy(&b).into_owned())
        .boxed()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mutations_stay_in_bounds_on_empty_and_short_inputs() {
        let edits = [
            Mutation::Set(7, 1),
            Mutation::Remove(100, 50),
            Mutation::Repeat(3, 10, 5),
            Mutation::Insert(99, b"ab".to_vec()),
            Mutation::Truncate(1),
        ];
        assert_eq!(mutate(b"", &edits), b"a".to_vec());
        assert_eq!(
            mutate(b"xyz", &[Mutation::Repeat(1, 1, 3)]),
            b"xyyyz".to_vec()
        );
    }
}
