//! The pages' bodies, one module per page.

pub mod eval;
pub mod job;
pub mod list;
pub mod overview;
pub mod sample;
pub mod search;
