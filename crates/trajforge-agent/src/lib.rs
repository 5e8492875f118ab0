//! The engine every rollout runs on: environments offer tools and observations, and one
//! agent loop drives any teacher over any environment.
//!
//! - [`env::Environment`]: tools, observations and an outcome; a repository workspace and
//!   (later) a browser on a site implement it.
//! - [`agent::run_episode`]: the loop, with step limit, malformed-call handling, context
//!   limit and teacher failures, recording every step in a [`trajectory::Trajectory`].

pub mod agent;
pub mod editor;
pub mod env;
pub mod repo;
pub mod trajectory;

pub use agent::{Event, LoopConfig, run_episode};
pub use env::{BoxFuture, EnvOutcome, Environment, Observation};
pub use repo::RepoEnvironment;
pub use trajectory::{ExitStatus, Step, ToolUse, Trajectory};
