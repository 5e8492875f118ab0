//! The engine core every rollout runs on, free of any sandbox or browser: the environment
//! interface, the agent loop that drives any teacher over any environment, and the records
//! of an episode.
//!
//! - [`env::Environment`]: tools, observations and an outcome; a repository workspace
//!   (`trajforge-repo-env`) and a browser on a site (`trajforge-browser`) implement it; the
//!   factories that open them, and their typed errors, are the pipeline's (`trajforge_pipeline::envs`).
//! - [`agent::run_episode`]: the loop, with step limit, malformed-call handling, context
//!   limit and teacher failures, recording every step in a [`trajectory::Trajectory`].
//! - [`trajectory`]: the episode record (steps, usage, exit status, outcome) that the store,
//!   export and import read and write.

pub mod agent;
pub mod env;
pub mod trajectory;

pub use agent::{DEFAULT_MAX_REPEATS, Event, LoopConfig, run_episode};
pub use env::{BoxFuture, EnvOutcome, Environment, Observation};
pub use trajectory::{ExitStatus, Step, ToolUse, Trajectory};
