//! The embedded local teacher: a GGUF model (by default SmolLM2-135M-Instruct) run
//! in-process with llama.cpp, with the model's own chat template (rendered by
//! `trajforge-chat`, as exports render it), grammar-constrained
//! hermes tool calls, KV-cache reuse across the steps of an episode, and an
//! OpenAI-compatible HTTP server (`trajforge serve`) that also speaks Anthropic's Messages
//! API, in front of the model or of an upstream server, and that can drive the model
//! through the tool set it was trained on for Claude Code (`--tools trained`).

mod engine;
mod error;
mod gguf;
mod grammar;
mod messages;
mod server;
mod teacher;
mod trained;

use std::path::PathBuf;

pub use engine::{
    BATCH_TOKENS, Event, Finish, Generation, SamplingParams, llama_backend, new_context,
    sampler_chain,
};
pub use error::{INSTALL_HINT, LocalError};
pub use gguf::{GgufInfo, read_gguf};
pub use grammar::{ToolChoice, tool_grammar};
pub use messages::{Backend, CountError, MessagesOptions, TokenCounter};
pub use server::{ServeOptions, serve, serve_backend, wait_for_ctrl_c};
pub use teacher::{LocalOptions, LocalStats, LocalTeacher, MAX_DEFAULT_CTX, Reply, Started};
pub use trained::{TRAINED_ROOT, ToolsMode, TrainedError, TrainedTools};
pub use trajforge_chat::ChatTemplate;
/// Split the model's output into content and tool calls (the grammar-constrained reading).
pub use trajforge_chat::hermes::grammar_output as parse_output;

pub use trajforge_gguf::{DEFAULT_MODEL_FILE, default_model_path};

/// `local` gives the default model path, `local:PATH` gives PATH; anything else is `None`.
pub fn parse_local_spec(spec: &str) -> Option<PathBuf> {
    let spec = spec.trim();
    if spec == "local" {
        return Some(default_model_path());
    }
    let path = spec.strip_prefix("local:")?;
    if path.is_empty() {
        return Some(default_model_path());
    }
    Some(PathBuf::from(path))
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn local_specs() {
        assert_eq!(parse_local_spec("local"), Some(default_model_path()));
        assert_eq!(parse_local_spec("local:"), Some(default_model_path()));
        assert_eq!(
            parse_local_spec("local:/m/x.gguf"),
            Some(PathBuf::from("/m/x.gguf"))
        );
        assert_eq!(parse_local_spec("http://127.0.0.1:8000/v1"), None);
        assert_eq!(parse_local_spec("localhost:8000"), None);
        assert!(default_model_path().ends_with(DEFAULT_MODEL_FILE));
    }
}
