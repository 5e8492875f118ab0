//! Limits and settings of the sandbox.

use std::path::PathBuf;
use std::time::Duration;

use serde::{Deserialize, Serialize};

/// Resource limits applied to every sandboxed command.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct Limits {
    /// Wall time allowed per command (default 300 s).
    pub timeout: Duration,
    /// Address space per process in bytes (RLIMIT_AS), `None` for unlimited.
    pub memory_bytes: Option<u64>,
    /// Processes (and threads) the sandbox may run at once (RLIMIT_NPROC in its own user namespace).
    pub max_processes: Option<u64>,
    /// Largest file a process may write, in bytes (RLIMIT_FSIZE).
    pub max_file_size: Option<u64>,
    /// Open file descriptors per process (RLIMIT_NOFILE).
    pub max_open_files: Option<u64>,
    /// Size of the private `/tmp` and `/dev/shm` tmpfs mounts, in bytes each.
    pub tmp_size: u64,
    /// Output bytes kept per command; the middle of longer output is dropped with a note.
    pub max_output_bytes: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            timeout: Duration::from_secs(300),
            memory_bytes: Some(4 << 30),
            max_processes: Some(1024),
            max_file_size: Some(1 << 30),
            max_open_files: Some(4096),
            tmp_size: 512 << 20,
            max_output_bytes: 1 << 20,
        }
    }
}

/// Uid and gid the sandbox runs as on the host when the caller is root.
pub const DEFAULT_SANDBOX_UID: u32 = 65534;

/// A container engine whose command-line interface runs sandboxes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Engine {
    /// Podman (rootless or as root), tested.
    Podman,
    /// Docker's CLI against a running engine; same code path, untested here.
    Docker,
}

impl Engine {
    /// The program name of the engine's command-line interface.
    pub fn program(self) -> &'static str {
        match self {
            Engine::Podman => "podman",
            Engine::Docker => "docker",
        }
    }
}

/// What sandboxed commands run in.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase", tag = "kind")]
pub enum Backend {
    /// bubblewrap over the host's system directories (the default).
    #[default]
    Bubblewrap,
    /// A container of `image` (which brings bash, git and coreutils) started by `engine`.
    Container {
        /// podman or docker.
        engine: Engine,
        /// The image, already present locally (it is never pulled).
        image: String,
    },
}

/// How sandboxes are built.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct SandboxConfig {
    /// bubblewrap (default) or a container engine and image.
    pub backend: Backend,
    /// Path of the bubblewrap binary; `None` searches /usr/bin, /usr/local/bin and `PATH`.
    pub bwrap: Option<PathBuf>,
    /// Limits for episode commands.
    pub limits: Limits,
    /// Where the workspace appears inside the sandbox.
    pub workspace_dir: PathBuf,
    /// Host uid used when the caller is root (so RLIMIT_NPROC applies); ignored otherwise.
    pub sandbox_uid: u32,
    /// Host gid used when the caller is root; ignored otherwise.
    pub sandbox_gid: u32,
    /// Extra environment variables set inside (the caller's environment is never passed).
    pub env: Vec<(String, String)>,
    /// Extra host paths bound read-only at the same place inside.
    pub ro_binds: Vec<PathBuf>,
    /// Keep background processes of a session alive between commands (default: kill them).
    pub keep_background: bool,
    /// Run programs under the seccomp filter (default on; off only to measure its cost).
    pub seccomp: bool,
    /// Show only the /etc entries programs need (default on) instead of the host's whole /etc
    /// (secrets masked); more host paths can be added with `ro_binds`.
    pub minimal_etc: bool,
    /// Run programs under Landlock where the kernel has it (default on): writes only beneath
    /// the workspace, /tmp and /dev/shm. See [`crate::landlock`].
    pub landlock: bool,
    /// The program that applies Landlock inside the sandbox; `None`: the running binary, when
    /// it called [`crate::landlock::run_helper_if_asked`].
    pub landlock_helper: Option<PathBuf>,
}

impl Default for SandboxConfig {
    fn default() -> Self {
        SandboxConfig {
            backend: Backend::Bubblewrap,
            bwrap: None,
            limits: Limits::default(),
            workspace_dir: PathBuf::from("/workspace"),
            sandbox_uid: DEFAULT_SANDBOX_UID,
            sandbox_gid: DEFAULT_SANDBOX_UID,
            env: Vec::new(),
            ro_binds: Vec::new(),
            keep_background: false,
            seccomp: true,
            minimal_etc: true,
            landlock: true,
            landlock_helper: None,
        }
    }
}

impl SandboxConfig {
    /// Whether this config's commands run under Landlock, and if not, why (a note to record).
    pub fn landlock_status(&self) -> crate::landlock::Status {
        if !self.landlock {
            return crate::landlock::Status::Unavailable("turned off in the settings".into());
        }
        crate::landlock::status(self.landlock_helper.as_deref())
    }
}

/// The locale every sandboxed process runs under (where a container image lacks it, `C`).
pub(crate) const LOCALE: &str = "C.UTF-8";
/// The variables of [`base_env`] that name the locale.
pub(crate) const LOCALE_VARS: [&str; 2] = ["LANG", "LC_ALL"];

/// The fixed environment every sandboxed process starts with.
pub(crate) fn base_env() -> Vec<(String, String)> {
    [
        (
            "PATH",
            "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
        ),
        ("HOME", "/root"),
        ("LANG", LOCALE),
        ("LC_ALL", LOCALE),
        ("TERM", "dumb"),
        ("PAGER", "cat"),
        ("GIT_PAGER", "cat"),
        ("PIP_PROGRESS_BAR", "off"),
        ("PIP_NO_INPUT", "1"),
        ("PYTHONDONTWRITEBYTECODE", "1"),
    ]
    .iter()
    .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
    .collect()
}
