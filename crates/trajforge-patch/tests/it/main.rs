//! Integration tests of patch parsing and line recall, in one test binary.

mod fixed;
mod git;
mod props;
