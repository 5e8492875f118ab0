//! Integration tests on a real browser and a real documentation site (bidict's Sphinx docs
//! from Debian, fetched by scripts/fetch-test-data.sh).

// Tests may say why they skip.
#![allow(clippy::print_stderr)]

mod cdp_fuzz;
mod clicks;
mod common;
mod crawl_replay;
mod env_actions;
mod resilience;
mod safety;
mod snapshot;
