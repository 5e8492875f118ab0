//! Errors of the repository environment.

use trajforge_sandbox::SandboxError;

/// Why a call into the episode's sandboxed shell failed. Its text becomes part of an error
/// observation, so it reads as the model should see it.
#[derive(Debug, thiserror::Error)]
pub enum RepoEnvError {
    /// The sandbox session failed (the shell, a file read or write, the diff).
    #[error(transparent)]
    Sandbox(#[from] SandboxError),
    /// `mkdir -p` of a file's parent folder failed; the editor names the file, the shell's
    /// own message (its whole text) says why.
    #[error("{output}")]
    MakeDir {
        /// The folder that could not be created.
        dir: String,
        /// What `mkdir` printed.
        output: String,
    },
    /// The thread running the blocking session call panicked or was cancelled.
    #[error("sandbox worker failed: {source}")]
    Worker {
        /// The join error; `is_panic()` tells a panic from a cancel.
        #[source]
        source: tokio::task::JoinError,
    },
}
