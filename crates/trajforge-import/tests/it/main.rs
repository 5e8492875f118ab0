//! Integration tests of the importers on the fixtures (see fixtures/README.md for their
//! provenance) and of writing into a run's store.

mod fixtures;
mod fuzz;
mod props;
mod real;
mod store;

use std::path::PathBuf;

/// A fixture file.
pub fn fixture(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("fixtures")
        .join(name)
}
