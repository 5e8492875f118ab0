//! Tests of the viewer: pages rendered from real run stores (the 0.1 fixtures and synthetic
//! runs, evaluations), snapshots of HTML fragments, and the safety of hostile content in real
//! Chromium.

// A test skipped for want of Chromium outside CI says so.
#![allow(clippy::print_stderr)]

mod chromium;
mod eval;
mod pages;
mod safety;

use std::path::{Path, PathBuf};

/// The workspace root.
pub fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../..")
        .canonicalize()
        .expect("root")
}

/// A copy of the 0.1 fixture run `name` (`code`, `web`) in a temporary folder (SQLite adds
/// its shared-memory file beside a database it reads, so the fixture itself is not opened).
pub fn fixture_run(name: &str) -> (tempfile::TempDir, PathBuf) {
    let tmp = tempfile::tempdir().expect("tempdir");
    let from = repo_root()
        .join("crates/trajforge/tests/fixtures/runs-0.1")
        .join(name);
    let dir = tmp.path().join(name);
    std::fs::create_dir_all(&dir).expect("dir");
    std::fs::copy(from.join("trajforge.db"), dir.join("trajforge.db")).expect("copy");
    (tmp, dir)
}
