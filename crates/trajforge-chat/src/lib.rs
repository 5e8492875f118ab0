//! The chat protocol, defined once for the teacher client, the embedded teacher, its
//! OpenAI-compatible server and the exporters: conversation types ([`ChatMessage`],
//! [`ToolCall`], [`ToolSpec`]), the OpenAI chat-completions wire structs ([`wire`]),
//! Anthropic's Messages API and its translation ([`anthropic`]), hermes
//! tool calls in text ([`hermes`]) and chat templates rendered as Hugging Face transformers
//! renders them ([`template`]).

pub mod anthropic;
#[cfg(test)]
mod fuzz_tests;
pub mod hermes;
pub mod template;
mod types;
pub mod wire;

pub use template::{ChatTemplate, TemplateError};
pub use types::{ChatMessage, Role, Sampling, ServerStats, ToolCall, ToolMode, ToolSpec, Usage};
