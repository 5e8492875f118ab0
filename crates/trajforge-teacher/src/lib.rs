//! Teacher client: drives any OpenAI-compatible chat-completions server (vLLM, SGLang,
//! llama.cpp, Ollama, hosted APIs) with native tool calls or Qwen/Hermes `<tool_call>` text,
//! with retries, a shared in-flight limit and a key that never leaks into output.

mod backoff;
mod client;
mod error;
mod key;
mod limiter;
mod text;
mod types;
mod wire;

pub use client::{CompletionFuture, OpenAiTeacher, RetryEvent, RetryHook, Teacher, TeacherConfig};
pub use error::TeacherError;
pub use key::{API_KEY_ENV_VARS, ApiKey};
pub use limiter::{RequestLimiter, RequestPermit};
pub use types::{
    ChatMessage, Completion, Role, Sampling, TeacherInfo, ToolCall, ToolMode, ToolSpec, Usage,
};

/// The system-prompt section hermes mode appends, for callers that count prompt tokens.
pub fn hermes_tools_prompt(tools: &[ToolSpec]) -> String {
    wire::hermes_tools_prompt(tools)
}
