//! Typed errors of the browser crate.

use std::path::PathBuf;

/// What can go wrong driving the browser, crawling or replaying.
#[derive(Debug, thiserror::Error)]
pub enum BrowserError {
    /// The browser executable could not be started.
    #[error("could not start the browser {path}: {source}")]
    Launch {
        /// The executable.
        path: PathBuf,
        /// The cause.
        source: std::io::Error,
    },
    /// The DevTools pipe closed: the browser exited or crashed.
    #[error("the browser closed its DevTools connection (it exited or crashed)")]
    Closed,
    /// A DevTools call got no answer in time: the browser may be hung.
    #[error("DevTools call {method} got no answer within {millis} ms")]
    Timeout {
        /// The command.
        method: String,
        /// The limit.
        millis: u64,
    },
    /// The browser answered a call with an error.
    #[error("DevTools call {method} failed: {message}")]
    Protocol {
        /// The command.
        method: String,
        /// The browser's message.
        message: String,
    },
    /// A URL could not be used.
    #[error("bad URL {url:?}: {reason}")]
    Url {
        /// The URL as given.
        url: String,
        /// Why.
        reason: String,
    },
    /// Navigation failed (network error, blocked, not recorded).
    #[error("could not load {url}: {reason}")]
    Navigation {
        /// The URL.
        url: String,
        /// The browser's error text.
        reason: String,
    },
    /// A ref of an earlier snapshot whose element is no longer on the page.
    #[error("ref e{id}: the element is gone from the page (stale ref)")]
    StaleRef {
        /// The ref's id.
        id: u64,
    },
    /// Reading or writing a recording failed.
    #[error("{path}: {message}")]
    Store {
        /// The file or folder.
        path: PathBuf,
        /// What went wrong.
        message: String,
    },
}

impl BrowserError {
    /// True when the browser itself is gone or unresponsive and must be replaced.
    pub fn is_fatal(&self) -> bool {
        matches!(self, BrowserError::Closed | BrowserError::Timeout { .. })
    }

    pub(crate) fn store(path: impl Into<PathBuf>, message: impl std::fmt::Display) -> Self {
        BrowserError::Store {
            path: path.into(),
            message: message.to_string(),
        }
    }
}
