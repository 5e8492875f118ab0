//! Reference vectors. Every literal below was recorded from the code this crate replaced
//! (menu, settings, demos, code.rs `draw`, ingest's sampler, the CLI's work folder, the
//! testkit's page tags, the export benchmark). Changing any of them breaks resumes of
//! existing runs: fix the code, never the numbers.

use super::*;

#[test]
fn fnv1a64_matches_the_published_vectors() {
    assert_eq!(fnv1a64(b""), 0xcbf2_9ce4_8422_2325);
    assert_eq!(fnv1a64(b"a"), 0xaf63_dc4c_8601_ec8c);
    assert_eq!(fnv1a64(b"foobar"), 0x8594_4171_f739_67e8);
}

#[test]
fn streaming_equals_one_shot_and_fields_are_length_prefixed() {
    let mut h = Fnv1a64::default();
    h.write(b"foo");
    h.write_u8(b'b');
    h.write(b"ar");
    assert_eq!(h.finish(), fnv1a64(b"foobar"));
    assert_eq!(h.hex(), "85944171f73967e8");
    let mut f = Fnv1a64::new();
    f.write_field(b"foobar");
    assert_eq!(f.finish(), fnv1a64(b"6:foobar"));
}

#[test]
fn fnv1a64_pins_page_tags_and_work_folders() {
    // trajforge-testkit's page tags (low 32 bits of the URL path's digest).
    for (url, digest) in [
        ("/index.html", 0xc0db_15da_9843_8971_u64),
        ("/docs/page.html?x=1", 0xe5c1_44cb_6e42_46f5),
    ] {
        assert_eq!(fnv1a64(url.as_bytes()), digest, "{url}");
    }
    // `trajforge run`'s default work folder, env-<digest of the repository path>.
    for (repo, digest) in [
        ("/", 0xaf63_a24c_8601_89fe_u64),
        ("/work/repo", 0x1cd4_fc81_c874_2440),
        ("/home/user/src/my project", 0x12c4_d7da_5ac3_f1a6),
    ] {
        assert_eq!(fnv1a64(repo.as_bytes()), digest, "{repo}");
    }
}

#[test]
fn fingerprints_are_pinned() {
    assert_eq!(fingerprint("abc"), "c6cf8fb538aadbab");
    assert_eq!(fingerprint(&()), "5b9bc4ba528108e4");
    assert_eq!(
        fingerprint(&serde_json::json!({"a": 1, "b": [true, null]})),
        "595cf28929e773ea"
    );
}

#[test]
fn splitmix64_streams_are_pinned() {
    let stream = |seed| {
        let mut r = SplitMix64::new(seed);
        [(); 5].map(|()| r.next_u64())
    };
    assert_eq!(
        stream(0),
        [
            0xE220_A839_7B1D_CDAF,
            0x6E78_9E6A_A1B9_65F4,
            0x06C4_5D18_8009_454F,
            0xF88B_B8A8_724C_81EC,
            0x1B39_896A_51A8_749B,
        ]
    );
    assert_eq!(
        stream(42),
        [
            0xBDD7_3226_2FEB_6E95,
            0x28EF_E333_B266_F103,
            0x4752_6757_130F_9F52,
            0x581C_E1FF_0E4A_E394,
            0x09BC_585A_2448_23F2,
        ]
    );
}

#[test]
fn the_first_splitmix64_output_pins_the_export_benchmark_mix() {
    // trajforge-bench's `mix(x)` was one SplitMix64 step from state x.
    for (x, mixed) in [
        (0_u64, 0xe220_a839_7b1d_cdaf_u64),
        (1, 0x910a_2dec_8902_5cc1),
        (42, 0xbdd7_3226_2feb_6e95),
        (u64::MAX, 0xe4d9_7177_1b65_2c20),
        ((3 << 20) ^ (5 << 4) ^ 0x1234, 0xa5d2_c6ac_00bb_829e),
    ] {
        assert_eq!(SplitMix64::new(x).next_u64(), mixed, "{x}");
        assert_eq!(mix64(x.wrapping_add(GAMMA)), mixed, "{x}");
    }
}

#[test]
fn shuffles_are_pinned() {
    for (seed, order) in [
        (0_u64, [6, 3, 2, 9, 8, 1, 4, 7, 0, 5]),
        (1, [4, 2, 8, 1, 9, 3, 0, 6, 7, 5]),
        (7, [8, 1, 5, 9, 0, 4, 3, 2, 6, 7]),
        (42, [0, 9, 5, 8, 6, 4, 7, 2, 1, 3]),
        (u64::MAX, [3, 4, 2, 7, 5, 0, 8, 1, 9, 6]),
    ] {
        let mut items: Vec<u32> = (0..10).collect();
        shuffle(&mut items, seed);
        assert_eq!(items, order, "seed {seed}");
    }
    let mut items: Vec<u32> = (0..20).collect();
    shuffle(&mut items, 3);
    assert_eq!(items[..5], [5, 9, 12, 11, 19]);
}

#[test]
fn draws_are_pinned() {
    for (seed, key, attempt, purpose, n, drawn) in [
        (0, "", 0, "", 1, 0),
        (0, "k", 1, "bug", 51, 8),
        (7, "k", 1, "bug", 51, 45),
        (7, "k", 2, "bug", 51, 14),
        (42, "pkg/mod.py::f@1", 1, "demo", 65, 11),
        (42, "pkg/mod.py::f@1", 3, "demo", 65, 28),
        (
            u64::MAX,
            "task-7",
            0,
            "intent-order",
            usize::MAX,
            8_709_613_239_401_999_508,
        ),
        (1, "x", 0, "start-page", 1000, 492),
        (5, "k", 0, "bug", 0, 0),
    ] {
        assert_eq!(
            draw(seed, key, attempt, purpose, n),
            drawn,
            "draw({seed}, {key:?}, {attempt}, {purpose:?}, {n})"
        );
    }
}
