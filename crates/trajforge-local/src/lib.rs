//! The embedded local teacher: a GGUF model (by default SmolLM2-135M-Instruct) run
//! in-process with llama.cpp, with the model's own chat template (rendered by
//! `trajforge-chat`, as exports render it), grammar-constrained
//! hermes tool calls, KV-cache reuse across the steps of an episode, and an
//! OpenAI-compatible HTTP server (`trajforge serve`).

mod engine;
mod error;
mod gguf;
mod grammar;
mod server;
mod teacher;

use std::path::PathBuf;

pub use engine::{
    BATCH_TOKENS, Event, Finish, Generation, SamplingParams, llama_backend, new_context,
    sampler_chain,
};
pub use error::{INSTALL_HINT, LocalError};
pub use gguf::{GgufInfo, read_gguf};
pub use grammar::{ToolChoice, tool_grammar};
pub use server::{ServeOptions, serve, wait_for_ctrl_c};
pub use teacher::{LocalOptions, LocalStats, LocalTeacher, MAX_DEFAULT_CTX, Reply, Started};
pub use trajforge_chat::ChatTemplate;
/// Split the model's output into content and tool calls (the grammar-constrained reading).
pub use trajforge_chat::hermes::grammar_output as parse_output;

/// File name of the default model that `scripts/install-model.sh` installs.
pub const DEFAULT_MODEL_FILE: &str = "SmolLM2-135M-Instruct.Q4_1.gguf";

/// Where `scripts/install-model.sh` puts the default model:
/// `$TRAJFORGE_MODEL_DIR`, else `$HOME/.cache/trajforge/models`.
pub fn default_model_path() -> PathBuf {
    let dir = std::env::var_os("TRAJFORGE_MODEL_DIR")
        .filter(|d| !d.is_empty())
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            std::env::var_os("HOME")
                .filter(|h| !h.is_empty())
                .map_or_else(|| PathBuf::from("."), PathBuf::from)
                .join(".cache")
                .join("trajforge")
                .join("models")
        });
    dir.join(DEFAULT_MODEL_FILE)
}

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
