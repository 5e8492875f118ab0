//! Test support for trajforge: a scripted fake OpenAI-compatible chat-completions server,
//! bound to 127.0.0.1 on a free port, that plays tool calls, malformed output, error
//! statuses, slow answers and dropped connections so every path of the agent loop can be
//! tested deterministically.

mod script;
mod server;
pub mod svg;
pub mod web;

pub use script::{FakeToolCall, FakeUsage, Reply, Script, Step};
pub use server::{FakeServer, RecordedRequest, ServerOptions};
