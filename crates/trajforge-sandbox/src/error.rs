//! Errors of the sandbox crate.

use std::io;
use std::path::PathBuf;

/// Anything that can go wrong preparing environments or running sandboxed commands.
#[derive(Debug, thiserror::Error)]
pub enum SandboxError {
    /// bubblewrap could not be found.
    #[error("bubblewrap not installed: run scripts/setup.sh (looked for {looked})")]
    BwrapMissing {
        /// Where we looked.
        looked: String,
    },
    /// The container engine's command-line interface could not be found.
    #[error(
        "container engine `{program}` not installed: install it (Debian: `apt-get install podman`, \
         as scripts/setup.sh does) or use the default sandbox"
    )]
    EngineMissing {
        /// `podman` or `docker`.
        program: &'static str,
    },
    /// The container image is not present locally (it is never pulled).
    #[error(
        "container image `{image}` not found by {program}: images are never pulled; build, load \
         or pull it first (`{program} images` lists what is there){detail}"
    )]
    ImageMissing {
        /// The image as given.
        image: String,
        /// `podman` or `docker`.
        program: &'static str,
        /// What the engine said, if anything.
        detail: String,
    },
    /// A file-system operation failed.
    #[error("cannot {action} {path}: {source}")]
    Io {
        /// What we tried to do.
        action: &'static str,
        /// The path involved.
        path: PathBuf,
        /// The underlying error.
        #[source]
        source: io::Error,
    },
    /// A host-side git command failed.
    #[error("`git {args}` in {dir} failed ({status}): {stderr}")]
    Git {
        /// Arguments given to git.
        args: String,
        /// Directory git ran in.
        dir: PathBuf,
        /// Exit status.
        status: String,
        /// What git printed on standard error.
        stderr: String,
    },
    /// The sandbox process could not be started.
    #[error("cannot start sandbox `{program}`: {source}")]
    Spawn {
        /// The program we tried to start.
        program: String,
        /// The underlying error.
        #[source]
        source: io::Error,
    },
    /// Talking to the sandboxed process failed.
    #[error("sandbox I/O failed while {action}: {source}")]
    Pipe {
        /// What we were doing.
        action: &'static str,
        /// The underlying error.
        #[source]
        source: io::Error,
    },
    /// The seccomp filter could not be handed to bubblewrap.
    #[error("cannot install the seccomp filter ({detail}): {source}")]
    Seccomp {
        /// What failed.
        detail: &'static str,
        /// The underlying error.
        #[source]
        source: io::Error,
    },
    /// A path cannot be given to overlayfs.
    #[error("path {path} cannot be an overlay layer: it contains ',', ':' or '\\'")]
    UnsupportedPath {
        /// The offending path.
        path: PathBuf,
    },
    /// The sandbox uid cannot reach a directory it needs.
    #[error(
        "directory {path} is not accessible to the sandbox uid {uid}: put the work directory \
         under a world-traversable path such as /var/tmp, or `chmod o+x` its parents"
    )]
    NotAccessible {
        /// The directory that blocks access.
        path: PathBuf,
        /// The host uid the sandbox runs as.
        uid: u32,
    },
    /// The repository set-up command failed.
    #[error(
        "set-up command `{command}` failed (exit code {exit_code:?}, timed out: {timed_out}): {output}"
    )]
    SetupFailed {
        /// The command.
        command: String,
        /// Its exit code.
        exit_code: Option<i32>,
        /// Whether it hit the time limit.
        timed_out: bool,
        /// Its (clipped) output.
        output: String,
    },
    /// Another session or command is using the workspace.
    #[error("workspace {path} is busy: a session or command is already using it")]
    WorkspaceBusy {
        /// The workspace directory.
        path: PathBuf,
    },
    /// Computing the patch failed.
    #[error("diff of workspace {path} failed (exit code {exit_code:?}): {output}")]
    DiffFailed {
        /// The workspace directory.
        path: PathBuf,
        /// Exit code of the diff script.
        exit_code: Option<i32>,
        /// What it printed.
        output: String,
    },
    /// Reading or writing a file through the session failed.
    #[error("cannot {op} {path} in the sandbox (exit code {exit_code:?}): {output}")]
    FileOp {
        /// `read` or `write`.
        op: &'static str,
        /// The path as given.
        path: String,
        /// Exit code of the shell command.
        exit_code: Option<i32>,
        /// What it printed.
        output: String,
    },
    /// The command text cannot be passed to bash.
    #[error("command contains a NUL byte")]
    NulInCommand,
    /// The persistent shell did not start properly.
    #[error("sandbox shell did not start: {detail}")]
    ShellStart {
        /// What went wrong, with the shell's output.
        detail: String,
    },
    /// Stored environment metadata is unreadable.
    #[error("environment metadata {path} is invalid: {source}")]
    Metadata {
        /// The metadata file.
        path: PathBuf,
        /// The parse error.
        #[source]
        source: serde_json::Error,
    },
}

/// Result type of this crate.
pub type Result<T, E = SandboxError> = std::result::Result<T, E>;

impl SandboxError {
    /// Wraps an I/O error with the action and path it concerns.
    pub(crate) fn io(
        action: &'static str,
        path: impl Into<PathBuf>,
    ) -> impl FnOnce(io::Error) -> Self {
        let path = path.into();
        move |source| SandboxError::Io {
            action,
            path,
            source,
        }
    }
}
