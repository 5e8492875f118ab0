//! Soft-Verified Generation (SERA, SPEC.md section 2) for code: sample functions, rollout 1
//! from a drawn bug type, the teacher's self-check, a synthetic pull request in the style of
//! a demonstration issue, rollout 2 from that text alone, and line-recall verification,
//! with every stage committed to the run's store; and the same for websites (`web`), with a
//! judge-free agreement of two rollouts in place of line recall.

pub mod code;
pub mod demos;
pub mod prompts;
pub mod sandbox;
pub mod settings;
pub mod status;
pub mod testreport;
pub mod web;

pub use code::{CodeConfig, Control, EnvFactory, Worker};
pub use settings::RunSettings;
