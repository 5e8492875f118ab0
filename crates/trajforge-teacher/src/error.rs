//! Errors of the teacher client. None of them ever carries the API key.

use std::time::Duration;

/// Longest server body kept in an error, so a huge HTML error page does not flood logs.
pub(crate) const MAX_ERROR_BODY: usize = 2000;

/// Why a completion failed.
#[derive(Debug, thiserror::Error)]
pub enum TeacherError {
    /// The prompt does not fit the model's context window; retrying cannot help.
    #[error("context overflow (HTTP {status}): {message}")]
    ContextOverflow {
        /// HTTP status the server answered with.
        status: u16,
        /// The server's explanation.
        message: String,
    },
    /// The server answered with an error status (not retried, or retries exhausted).
    #[error("HTTP {status} from {url} after {attempts} attempt(s): {body}")]
    Status {
        /// HTTP status.
        status: u16,
        /// Endpoint that answered.
        url: String,
        /// Start of the response body.
        body: String,
        /// Attempts made.
        attempts: u32,
    },
    /// Every attempt timed out.
    #[error("request to {url} timed out after {timeout:?} ({attempts} attempt(s))")]
    Timeout {
        /// Endpoint.
        url: String,
        /// Per-request timeout.
        timeout: Duration,
        /// Attempts made.
        attempts: u32,
    },
    /// Connection refused, reset or closed before an answer, after retries.
    #[error("connection to {url} failed after {attempts} attempt(s): {message}")]
    Connection {
        /// Endpoint.
        url: String,
        /// Transport error description.
        message: String,
        /// Attempts made.
        attempts: u32,
    },
    /// The server answered 200 with something that is not a usable completion.
    #[error("malformed response from {url} after {attempts} attempt(s): {message}")]
    Malformed {
        /// Endpoint.
        url: String,
        /// What was wrong.
        message: String,
        /// Attempts made.
        attempts: u32,
    },
    /// The client could not be configured (bad URL, bad key characters, TLS set-up).
    #[error("teacher configuration: {0}")]
    Config(String),
}

impl TeacherError {
    /// True when the episode cannot continue with a shorter prompt either.
    pub fn is_context_overflow(&self) -> bool {
        matches!(self, TeacherError::ContextOverflow { .. })
    }

    /// Number of HTTP attempts made before giving up (1 for errors that are never retried).
    pub fn attempts(&self) -> u32 {
        match self {
            TeacherError::Status { attempts, .. }
            | TeacherError::Timeout { attempts, .. }
            | TeacherError::Connection { attempts, .. }
            | TeacherError::Malformed { attempts, .. } => *attempts,
            TeacherError::ContextOverflow { .. } => 1,
            TeacherError::Config(_) => 0,
        }
    }
}

/// Cut `text` to at most `MAX_ERROR_BODY` bytes on a character boundary.
pub(crate) fn truncate_body(text: &str) -> String {
    if text.len() <= MAX_ERROR_BODY {
        return text.trim().to_string();
    }
    let mut end = MAX_ERROR_BODY;
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    format!(
        "{}... ({} bytes in all)",
        text[..end].trim_end(),
        text.len()
    )
}
