//! The environment interface: what an agent can do and see, for code or for websites.

use std::future::Future;
use std::pin::Pin;
use std::time::Duration;

use serde_with::skip_serializing_none;

use trajforge_teacher::{ToolCall, ToolSpec};

/// A boxed future, so environments stay object-safe (`&mut dyn Environment`).
pub type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// What one tool call produced.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Observation {
    /// Text shown to the model as the tool's result.
    pub text: String,
    /// Exit code of a command, when the tool ran one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub exit_code: Option<i32>,
    /// True when the call failed (bad arguments, unknown tool, command timed out, ...).
    pub error: bool,
    /// True when this call ends the episode (a confirmed submit, an answer).
    pub done: bool,
    /// Wall time of the call.
    #[serde(with = "crate::trajectory::millis")]
    pub duration: Duration,
}

impl Observation {
    /// A successful observation.
    pub fn ok(text: impl Into<String>) -> Self {
        Observation {
            text: text.into(),
            exit_code: None,
            error: false,
            done: false,
            duration: Duration::ZERO,
        }
    }

    /// A failed call, explained to the model.
    pub fn error(text: impl Into<String>) -> Self {
        Observation {
            error: true,
            ..Observation::ok(text)
        }
    }
}

/// What an environment hands back when an episode ends.
#[skip_serializing_none]
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct EnvOutcome {
    /// For a repository: the patch of the workspace against the base commit.
    pub patch: Option<String>,
    /// For a repository: the patch's whole size in bytes when it was over the limit and
    /// `patch` holds only its head, with a note where it was cut.
    pub patch_cut: Option<u64>,
    /// For a website: the final URL.
    pub final_url: Option<String>,
    /// For a website: the answer given with `answer(text)`.
    pub answer: Option<String>,
    /// For a website: the title of the final page.
    pub title: Option<String>,
    /// For a website: the pages the episode was on, in order, the start page first.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub visited: Vec<String>,
    /// For a website: the reason given with `report_infeasible(reason)`.
    pub infeasible: Option<String>,
    /// Why the outcome could not be fully collected, if it could not.
    pub error: Option<String>,
}

/// An environment offers tools and observations; the agent loop drives it.
pub trait Environment: Send {
    /// The tools the model may call, with their JSON Schemas.
    fn tools(&self) -> Vec<ToolSpec>;

    /// Run one well-formed tool call.
    fn call<'a>(&'a mut self, call: &'a ToolCall) -> BoxFuture<'a, Observation>;

    /// Collect the result of the episode (patch, final page, answer).
    fn finish(&mut self) -> BoxFuture<'_, EnvOutcome>;
}
