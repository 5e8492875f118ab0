//! Soft-Verified Generation (SERA, SPEC.md section 2) for code: sample functions, rollout 1
//! from a drawn bug type, the teacher's self-check, a synthetic pull request in the style of
//! a demonstration issue, rollout 2 from that text alone, and line-recall verification,
//! with every stage committed to the run's store; and the same for websites (`web`), with a
//! judge-free agreement of two rollouts in place of line recall.
//!
//! The application layer lives here too: a run is specified ([`prepare::CodeRunSpec`],
//! [`prepare::WebRunSpec`]), prepared against its run folder ([`prepare::PreparedRun`]) and
//! driven by the job runner ([`runner`]) on environments from [`envs`] (sandboxed workspaces,
//! browser tabs), with the teacher built by [`teacher`]. Commands and benchmarks only map
//! their options to these types and show the results.

pub mod code;
pub mod decontaminate;
pub mod demos;
pub mod envs;
pub mod error;
pub mod eval;
pub mod prepare;
pub mod progress;
pub mod prompts;
pub mod runner;
#[cfg(feature = "local")]
pub mod serve;
pub mod settings;
pub mod status;
pub mod tasks;
pub mod teacher;
pub mod testreport;
pub mod web;
pub mod webeval;
pub mod worker;

pub use code::CodeConfig;
pub use envs::{EnvError, EnvFactory, WebEnvFactory, WebSession};
pub use error::RunError;
pub use prepare::{Budget, CodeRunSpec, PreparedRun, SandboxSpec, WebRunSpec};
pub use runner::{Control, Owner, Worker};
pub use settings::RunSettings;
