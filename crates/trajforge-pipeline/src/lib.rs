//! Soft-Verified Generation (SERA, SPEC.md section 2) for code: sample functions, rollout 1
//! from a drawn bug type, the teacher's self-check, a synthetic pull request in the style of
//! a demonstration issue, rollout 2 from that text alone, and line-recall verification,
//! with every stage committed to the run's store; and the same for websites (`web`), with a
//! judge-free agreement of two rollouts in place of line recall.
//!
//! The application layer lives here too: a run is specified ([`prepare::CodeRunSpec`],
//! [`prepare::WebRunSpec`]), prepared against its run folder ([`prepare::PreparedRun`]) and
//! driven by the job runner ([`runner`]) on environments from [`envs`] (sandboxed workspaces,
//! browser tabs), with the teacher built by [`teacher`]; [`worker`] joins a run held in a
//! shared PostgreSQL store from another machine. Commands and benchmarks only map their
//! options to these types and show the results.
//!
//! Held-out evaluation is driven the same way: [`tasks`] mines tasks from a repository's
//! history, [`eval`] runs a model on a task file in sandboxed workspaces, [`webeval`] draws
//! and runs navigation tasks on a replayed site, and [`decontaminate`] keeps generation away
//! from the functions those tasks touch. Around the stages: [`status`] and [`progress`]
//! (what a run has done), [`prompts`] and [`demos`] (stage inputs), [`settings`] (what a
//! resume must match), [`testreport`] (one test-output parser per format) and [`error`].

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
