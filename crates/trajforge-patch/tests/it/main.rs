//! Integration tests of patch parsing and line recall, in one test binary.

mod fixed;
mod fuzz;
mod git;
mod props;
