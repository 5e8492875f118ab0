//! Fuzzing the import formats with the real fixtures as seeds, damaged by byte flips,
//! splices, cuts and repeats (`TRAJFORGE_FUZZ_CASES` sets the budget): every format in both
//! layouts, and turning what parses into a job. No input panics; damage is a skipped record.

use proptest::prelude::*;
use trajforge_import::{Format, Layout, job_for, parse_bytes};
use trajforge_testkit::fuzz;

use crate::fixture;

/// The fixtures of every format (the small ones keep each case fast).
fn seeds() -> Vec<Vec<u8>> {
    [
        "sera/sera.jsonl",
        "mini-swe-agent/v1.9.1-local.traj.json",
        "mini-swe-agent/v2.4.6-local.traj.json",
        "mini-swe-agent/made-v2-toolcall.traj.json",
        "mini-swe-agent/made-v2-responses.traj.json",
        "swe-agent/v1-function-calling-demo.traj",
        "swe-agent/v0.7.0-ctf-networking-demo.traj",
    ]
    .iter()
    .map(|name| std::fs::read(fixture(name)).expect("fixture"))
    .collect()
}

proptest! {
    #![proptest_config(fuzz::config())]

    #[test]
    fn damaged_fixtures_never_panic(bytes in fuzz::inputs(seeds(), 4096)) {
        for format in Format::ALL {
            for layout in [Layout::Lines, Layout::Document] {
                let parsed = parse_bytes(format, &bytes, layout);
                for record in &parsed.records {
                    let _ = job_for(record, "fuzz.jsonl", 0.5);
                }
                prop_assert!(parsed.skipped.iter().all(|s| !s.reason.is_empty()));
            }
        }
    }
}
