//! The environment interface: what an agent can do and see, for code or for websites, and
//! the error opening one can fail with.

use std::future::Future;
use std::pin::Pin;
use std::time::Duration;

use trajforge_teacher::{ToolCall, ToolSpec};

/// A boxed future, so environments stay object-safe (`&mut dyn Environment`).
pub type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// Any error of the library behind an environment (the sandbox, the browser), boxed so this
/// core need not know those crates.
pub type BoxError = Box<dyn std::error::Error + Send + Sync + 'static>;

/// Why an environment could not be opened or could not do its work outside the model's view
/// (for example a test run on a patch); what environment factories return.
#[derive(Debug, thiserror::Error)]
pub enum EnvError {
    /// The library behind the environment failed; its error says what and where.
    #[error(transparent)]
    Backend(BoxError),
    /// The thread running a blocking environment call panicked or was cancelled.
    #[error("{what} worker failed: {source}")]
    Worker {
        /// Whose worker it was (`sandbox`, `browser`).
        what: &'static str,
        /// The join error; [`tokio::task::JoinError::is_panic`] tells a panic from a cancel.
        #[source]
        source: tokio::task::JoinError,
    },
}

impl EnvError {
    /// Wraps an error of the library behind the environment.
    pub fn backend(err: impl Into<BoxError>) -> Self {
        EnvError::Backend(err.into())
    }

    /// Whether a worker thread panicked (a bug, not a property of the task).
    pub fn is_panic(&self) -> bool {
        matches!(self, EnvError::Worker { source, .. } if source.is_panic())
    }
}

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
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct EnvOutcome {
    /// For a repository: the patch of the workspace against the base commit.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub patch: Option<String>,
    /// For a website: the final URL.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub final_url: Option<String>,
    /// For a website: the answer given with `answer(text)`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub answer: Option<String>,
    /// For a website: the title of the final page.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub title: Option<String>,
    /// For a website: the pages the episode was on, in order, the start page first.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub visited: Vec<String>,
    /// For a website: the reason given with `report_infeasible(reason)`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub infeasible: Option<String>,
    /// Why the outcome could not be fully collected, if it could not.
    #[serde(default, skip_serializing_if = "Option::is_none")]
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

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_backend_error_reads_as_itself_and_a_panicked_worker_is_a_panic() {
        let io = std::io::Error::other("workspace is busy");
        let err = EnvError::backend(io);
        assert_eq!(err.to_string(), "workspace is busy");
        assert!(!err.is_panic());

        let join = tokio::task::spawn_blocking(|| panic!("boom"))
            .await
            .expect_err("the task panicked");
        let err = EnvError::Worker {
            what: "sandbox",
            source: join,
        };
        assert!(err.is_panic());
        assert!(
            err.to_string().starts_with("sandbox worker failed: "),
            "{err}"
        );
        assert!(std::error::Error::source(&err).is_some());
    }
}
