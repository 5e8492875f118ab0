//! Integration tests of repository ingestion: every language on written snippets
//! (snapshots), real code (PyPI source distributions checked against Python's `ast`,
//! crate sources cargo downloaded), and the walk's handling of awkward trees.

mod real;
mod snippets;
mod walk;

use std::path::{Path, PathBuf};

/// The folder of this crate's fixtures.
pub fn fixtures() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests")
        .join("fixtures")
}

/// The workspace root.
pub fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../..")
        .canonicalize()
        .expect("workspace root")
}
