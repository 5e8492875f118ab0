//! Errors of the in-process teacher and its server.

use std::path::PathBuf;

/// The command that installs the default model, quoted in every model-file error.
pub const INSTALL_HINT: &str = "scripts/install-model.sh";

/// Why a model could not be loaded or a request could not be served.
#[derive(Debug, thiserror::Error)]
pub enum LocalError {
    /// The model file does not exist.
    #[error(
        "model file not found: {path}; install the default model with `{INSTALL_HINT}` or pass the path of a GGUF file"
    )]
    Missing {
        /// The path that was tried.
        path: PathBuf,
    },
    /// The file could not be read (permissions, I/O error).
    #[error(
        "cannot read model file {path}: {message}; install the default model with `{INSTALL_HINT}`"
    )]
    Unreadable {
        /// The file.
        path: PathBuf,
        /// The I/O error.
        message: String,
    },
    /// The file does not start with the GGUF magic.
    #[error(
        "{path} is not a GGUF model file (it starts with {found:?}, not \"GGUF\"); install the default model with `{INSTALL_HINT}`"
    )]
    NotGguf {
        /// The file.
        path: PathBuf,
        /// The first bytes found, escaped.
        found: String,
    },
    /// The file is a GGUF file but shorter than its own header says.
    #[error(
        "model file {path} is truncated: {detail}; delete it and reinstall with `{INSTALL_HINT}`"
    )]
    Truncated {
        /// The file.
        path: PathBuf,
        /// What was missing.
        detail: String,
    },
    /// The GGUF header is not understood (bad version, absurd counts, bad UTF-8).
    #[error(
        "model file {path} is corrupt: {detail}; reinstall the default model with `{INSTALL_HINT}`"
    )]
    Corrupt {
        /// The file.
        path: PathBuf,
        /// What was wrong.
        detail: String,
    },
    /// The model has no `tokenizer.chat_template`, so conversations cannot be rendered.
    #[error(
        "model file {path} has no chat template (tokenizer.chat_template); use an instruction-tuned GGUF such as the default installed by `{INSTALL_HINT}`"
    )]
    NoChatTemplate {
        /// The file.
        path: PathBuf,
    },
    /// The chat template does not compile or fails to render.
    #[error("chat template of {path}: {source}")]
    Template {
        /// The file.
        path: PathBuf,
        /// The template engine's explanation.
        #[source]
        source: trajforge_chat::TemplateError,
    },
    /// llama.cpp refused the model or the context.
    #[error(
        "llama.cpp could not load {path}: {message}; reinstall the default model with `{INSTALL_HINT}`"
    )]
    Load {
        /// The file.
        path: PathBuf,
        /// llama.cpp's error.
        message: String,
    },
    /// The prompt does not fit the context window.
    #[error("context overflow: the prompt has {prompt_tokens} tokens, the context holds {n_ctx}")]
    ContextOverflow {
        /// Tokens in the prompt.
        prompt_tokens: usize,
        /// Context size.
        n_ctx: u32,
    },
    /// The request cannot be served as asked (bad grammar input, bad tool schema).
    #[error("invalid request: {0}")]
    InvalidRequest(String),
    /// Evaluation failed inside llama.cpp.
    #[error("inference failed: {0}")]
    Inference(String),
    /// The model thread is gone (it panicked or the teacher was dropped).
    #[error("the local model worker stopped")]
    WorkerGone,
    /// The HTTP server could not run.
    #[error("server: {0}")]
    Server(String),
}

impl From<LocalError> for trajforge_teacher::TeacherError {
    fn from(err: LocalError) -> Self {
        use trajforge_teacher::TeacherError;
        match err {
            LocalError::ContextOverflow { .. } => TeacherError::ContextOverflow {
                // No HTTP is involved; 400 is what an OpenAI-compatible server would answer.
                status: 400,
                message: err.to_string(),
            },
            other => TeacherError::Config(other.to_string()),
        }
    }
}
