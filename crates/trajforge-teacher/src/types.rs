//! What a teacher answers and what it is, beside the chat types of `trajforge-chat`.

use std::time::Duration;

use serde::{Deserialize, Serialize};
use trajforge_chat::{ChatMessage, ToolMode, Usage};

/// The answer to one `complete` call.
#[derive(Debug, Clone, PartialEq)]
pub struct Completion {
    /// The assistant message, with reasoning and tool calls separated out.
    pub message: ChatMessage,
    /// Token usage of the successful attempt.
    pub usage: Usage,
    /// The server's finish reason (`stop`, `tool_calls`, `length`, ...).
    pub finish_reason: Option<String>,
    /// Duration of the successful attempt (excludes retries and waiting for the limiter).
    pub latency: Duration,
    /// Number of HTTP attempts made, including the successful one.
    pub attempts: u32,
}

/// What a teacher is, for recording alongside trajectories.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TeacherInfo {
    /// Base URL of the server (or a pseudo-URL for in-process models).
    pub base_url: String,
    /// Model name.
    pub model: String,
    /// Tool-call transport.
    pub mode: ToolMode,
}
