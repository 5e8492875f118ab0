//! Teacher client: drives any OpenAI-compatible chat-completions server (vLLM, SGLang,
//! llama.cpp, Ollama, hosted APIs) with native tool calls or Qwen/Hermes `<tool_call>` text,
//! with retries, an in-flight limit, several servers of one model behind one client (episodes
//! pinned, the least busy server for new ones, failing servers ejected), a key that never
//! leaks into output, and streamed completions passed on as they arrive ([`ChunkStream`]).
//!
//! Files by concept: `client` (the [`Teacher`] trait and [`OpenAiTeacher`]), `wire` (the
//! request per tool mode and the reading of answers, over `trajforge-chat`'s wire structs),
//! `router` (which server gets a request), `limiter` and `backoff` (in-flight limit, retry
//! delays), `stream`, `key` (the API key, redacted everywhere) and `types` (what a teacher
//! answers).

mod backoff;
mod client;
mod error;
#[cfg(test)]
mod fuzz_tests;
mod key;
mod limiter;
mod router;
mod stream;
mod types;
mod wire;

pub use client::{CompletionFuture, OpenAiTeacher, RetryEvent, RetryHook, Teacher, TeacherConfig};
pub use error::TeacherError;
pub use key::{API_KEY_ENV_VARS, ApiKey};
pub use limiter::{RequestLimiter, RequestPermit};
pub use router::{AttemptEnd, Route, Router, RouterPolicy};
pub use stream::ChunkStream;
// The chat types are protocol, defined in trajforge-chat; re-exported so users of the
// teacher need one import.
pub use trajforge_chat::{
    ChatMessage, Role, Sampling, ServerStats, ToolCall, ToolMode, ToolSpec, Usage,
};
pub use types::{Completion, TeacherInfo};
