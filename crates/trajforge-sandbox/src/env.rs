//! Repository environments: a base snapshot of one commit, optionally set up once.

use std::fs;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::config::{Limits, SandboxConfig};
use crate::error::{Result, SandboxError};
use crate::output::CommandOutput;
use crate::spawn::{self, Root};
use crate::workspace::{self, Workspace};

/// Name of the metadata file in an environment's work directory.
const META_FILE: &str = "environment.json";

/// How to prepare an environment.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct EnvironmentOptions {
    /// Commit (or any revision) to snapshot; `None` means HEAD.
    pub commit: Option<String>,
    /// Directory holding the base snapshot (`base/`) and episode workspaces (`episodes/`).
    pub work_dir: PathBuf,
    /// Sandbox settings for episodes (and, with `setup_limits`, for the set-up command).
    pub sandbox: SandboxConfig,
    /// Limits of the set-up command, which also has network access.
    pub setup_limits: Limits,
}

impl EnvironmentOptions {
    /// Options with default sandbox settings, keeping everything under `work_dir`.
    pub fn new(work_dir: impl Into<PathBuf>) -> Self {
        EnvironmentOptions {
            commit: None,
            work_dir: work_dir.into(),
            sandbox: SandboxConfig::default(),
            setup_limits: Limits {
                timeout: Duration::from_secs(1800),
                memory_bytes: Some(8 << 30),
                max_file_size: Some(4 << 30),
                tmp_size: 2 << 30,
                ..Limits::default()
            },
        }
    }
}

/// What is recorded next to a prepared base snapshot.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
struct Meta {
    /// Repository the snapshot came from.
    repo: PathBuf,
    /// Full commit id of the snapshot.
    commit: String,
    /// The set-up command that ran in it.
    setup_command: Option<String>,
}

/// A prepared repository environment shared by every episode on that repository.
#[derive(Debug, Clone)]
pub struct Environment {
    inner: Arc<EnvInner>,
}

/// Shared state of an environment.
#[derive(Debug)]
pub(crate) struct EnvInner {
    /// Work directory.
    pub root: PathBuf,
    /// Read-only base snapshot (the overlay's lower layer).
    pub base: PathBuf,
    /// Parent of episode workspaces.
    pub episodes: PathBuf,
    /// Commit id of the snapshot.
    pub commit: String,
    /// Sandbox settings for episodes.
    pub config: SandboxConfig,
    /// The sandbox program: bubblewrap, or the container engine's command-line interface.
    pub program: PathBuf,
    /// Counter for workspace names.
    next_id: AtomicU64,
    /// Output of the set-up command, when it ran in this call.
    setup_output: Option<CommandOutput>,
    /// Whether an existing snapshot was reused.
    reused: bool,
}

impl Environment {
    /// Snapshots `repo` at the requested commit into `options.work_dir/base`, runs
    /// `setup_cmd` there once (network allowed), and returns the environment. A snapshot
    /// already prepared there for the same commit and set-up command is reused as is.
    pub fn prepare(
        repo: &Path,
        setup_cmd: Option<&str>,
        options: &EnvironmentOptions,
    ) -> Result<Self> {
        let program = spawn::find_program(&options.sandbox)?;
        let repo = fs::canonicalize(repo).map_err(SandboxError::io("resolve repository", repo))?;
        let rev = options.commit.as_deref().unwrap_or("HEAD");
        let commit = git(
            &repo,
            &[
                "rev-parse",
                "--verify",
                "--end-of-options",
                &format!("{rev}^{{commit}}"),
            ],
        )?
        .trim()
        .to_owned();
        let root = options.work_dir.clone();
        if !root.exists() {
            fs::create_dir_all(&root).map_err(SandboxError::io("create work directory", &root))?;
            fs::set_permissions(&root, fs::Permissions::from_mode(0o755))
                .map_err(SandboxError::io("set permissions of", &root))?;
        }
        let root =
            fs::canonicalize(&root).map_err(SandboxError::io("resolve work directory", &root))?;
        let (uid, gid, drop_root) = spawn::host_identity(&options.sandbox);
        if drop_root {
            check_traversable(&root, uid, gid)?;
        }
        let base = root.join("base");
        let episodes = root.join("episodes");
        let meta_path = root.join(META_FILE);
        let wanted = Meta {
            repo: repo.clone(),
            commit: commit.clone(),
            setup_command: setup_cmd.map(str::to_owned),
        };
        if base.is_dir() && read_meta(&meta_path)?.is_some_and(|m| m == wanted) {
            return Ok(Self::assemble(
                root, base, episodes, commit, options, program, None, true,
            ));
        }
        let _ = fs::remove_file(&meta_path);
        if base.exists() {
            workspace::remove_tree(&base)
                .map_err(SandboxError::io("remove old base snapshot", &base))?;
        }
        snapshot(&repo, &commit, &base)?;
        if drop_root {
            chown_tree(&base, uid, gid)?;
        }
        let setup_output = match setup_cmd {
            Some(cmd) => {
                let spec = spawn::Spec {
                    config: &options.sandbox,
                    program: &program,
                    limits: &options.setup_limits,
                    root: Root::Bind(base.clone()),
                    network: true,
                    argv: spawn::bash(Some(cmd.into())),
                    stdin: false,
                    extra_ro: Vec::new(),
                };
                let out = workspace::run_oneshot(&spec, options.setup_limits.timeout)?;
                if out.exit_code != Some(0) || out.timed_out {
                    return Err(SandboxError::SetupFailed {
                        command: cmd.to_owned(),
                        exit_code: out.exit_code,
                        timed_out: out.timed_out,
                        output: out.output,
                    });
                }
                Some(out)
            }
            None => None,
        };
        finalize_base(&options.sandbox, &program, &base, setup_cmd.is_some())?;
        fs::create_dir_all(&episodes).map_err(SandboxError::io("create", &episodes))?;
        let meta =
            serde_json::to_string_pretty(&wanted).map_err(|source| SandboxError::Metadata {
                path: meta_path.clone(),
                source,
            })?;
        fs::write(&meta_path, meta).map_err(SandboxError::io("write", &meta_path))?;
        Ok(Self::assemble(
            root,
            base,
            episodes,
            commit,
            options,
            program,
            setup_output,
            false,
        ))
    }

    /// Opens an environment prepared earlier in `work_dir`.
    pub fn open(work_dir: &Path, sandbox: SandboxConfig) -> Result<Self> {
        let program = spawn::find_program(&sandbox)?;
        let root = fs::canonicalize(work_dir)
            .map_err(SandboxError::io("resolve work directory", work_dir))?;
        let meta_path = root.join(META_FILE);
        let meta = read_meta(&meta_path)?.ok_or_else(|| SandboxError::Io {
            action: "read",
            path: meta_path.clone(),
            source: std::io::Error::new(
                std::io::ErrorKind::NotFound,
                "no prepared environment here",
            ),
        })?;
        let mut options = EnvironmentOptions::new(&root);
        options.sandbox = sandbox;
        let base = root.join("base");
        let episodes = root.join("episodes");
        Ok(Self::assemble(
            root,
            base,
            episodes,
            meta.commit,
            &options,
            program,
            None,
            true,
        ))
    }

    /// Builds the shared state.
    #[allow(clippy::too_many_arguments)]
    fn assemble(
        root: PathBuf,
        base: PathBuf,
        episodes: PathBuf,
        commit: String,
        options: &EnvironmentOptions,
        program: PathBuf,
        setup_output: Option<CommandOutput>,
        reused: bool,
    ) -> Self {
        Environment {
            inner: Arc::new(EnvInner {
                root,
                base,
                episodes,
                commit,
                config: options.sandbox.clone(),
                program,
                next_id: AtomicU64::new(0),
                setup_output,
                reused,
            }),
        }
    }

    /// The work directory.
    pub fn work_dir(&self) -> &Path {
        &self.inner.root
    }

    /// The read-only base snapshot shared by all workspaces.
    pub fn base_dir(&self) -> &Path {
        &self.inner.base
    }

    /// Full id of the snapshotted commit.
    pub fn commit(&self) -> &str {
        &self.inner.commit
    }

    /// Sandbox settings used for episodes.
    pub fn config(&self) -> &SandboxConfig {
        &self.inner.config
    }

    /// Output of the set-up command, if it ran during this `prepare` call.
    pub fn setup_output(&self) -> Option<&CommandOutput> {
        self.inner.setup_output.as_ref()
    }

    /// Whether `prepare` reused a snapshot prepared earlier.
    pub fn reused(&self) -> bool {
        self.inner.reused
    }

    /// Creates a fresh copy-on-write workspace for one episode (a few empty directories).
    pub fn create_workspace(&self) -> Result<Workspace> {
        loop {
            let n = self.inner.next_id.fetch_add(1, Ordering::Relaxed);
            let dir = self
                .inner
                .episodes
                .join(format!("ws-{}-{n}", std::process::id()));
            match Workspace::create(self.inner.clone(), dir) {
                Err(SandboxError::Io { source, .. })
                    if source.kind() == std::io::ErrorKind::AlreadyExists => {}
                other => return other,
            }
        }
    }
}

/// Reads the metadata file, `None` when absent.
fn read_meta(path: &Path) -> Result<Option<Meta>> {
    match fs::read_to_string(path) {
        Ok(text) => {
            serde_json::from_str(&text)
                .map(Some)
                .map_err(|source| SandboxError::Metadata {
                    path: path.to_owned(),
                    source,
                })
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(SandboxError::Io {
            action: "read",
            path: path.to_owned(),
            source: e,
        }),
    }
}

/// Runs host-side git in `dir` and returns its standard output.
fn git(dir: &Path, args: &[&str]) -> Result<String> {
    let out = Command::new("git")
        .arg("-C")
        .arg(dir)
        .args(args)
        .env("GIT_TERMINAL_PROMPT", "0")
        .stdin(Stdio::null())
        .output()
        .map_err(|source| SandboxError::Spawn {
            program: "git".into(),
            source,
        })?;
    if !out.status.success() {
        return Err(SandboxError::Git {
            args: args.join(" "),
            dir: dir.to_owned(),
            status: out.status.to_string(),
            stderr: String::from_utf8_lossy(&out.stderr).trim().to_owned(),
        });
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

/// Creates `base` as a one-commit shallow clone of `commit`: same commit id, no later history.
fn snapshot(repo: &Path, commit: &str, base: &Path) -> Result<()> {
    fs::create_dir_all(base).map_err(SandboxError::io("create", base))?;
    fs::set_permissions(base, fs::Permissions::from_mode(0o755))
        .map_err(SandboxError::io("set permissions of", base))?;
    git(base, &["-c", "init.defaultBranch=main", "init", "-q"])?;
    let url = format!("file://{}", repo.display());
    git(
        base,
        &[
            "-c",
            "protocol.file.allow=always",
            "fetch",
            "-q",
            "--depth=1",
            "--no-tags",
            &url,
            commit,
        ],
    )?;
    git(
        base,
        &[
            "-c",
            "advice.detachedHead=false",
            "checkout",
            "-q",
            "--detach",
            commit,
        ],
    )?;
    let _ = fs::remove_file(base.join(".git/FETCH_HEAD"));
    Ok(())
}

/// Inside the sandbox, after set-up: hide what set-up created from `git add -A`, commit
/// set-up changes to tracked files, and refresh the index so episodes need not rehash files.
fn finalize_base(
    config: &SandboxConfig,
    program: &Path,
    base: &Path,
    after_setup: bool,
) -> Result<()> {
    let script = format!(
        r#"cd "{ws}" || exit 90
if [ "{after_setup}" = true ]; then
  git ls-files -z --others --exclude-standard --directory | while IFS= read -r -d '' p; do
    p=${{p//\\/\\\\}}; p=${{p//\*/\\*}}; p=${{p//\?/\\?}}; p=${{p//\[/\\[}}
    printf '/%s\n' "$p"
  done >> .git/info/exclude || exit 91
  if ! git diff --quiet HEAD --; then
    git -c user.name=trajforge -c user.email=trajforge@localhost commit -q -a --no-verify \
      -m 'trajforge: environment set-up' || exit 92
  fi
fi
# Back-date the tracked files and record that in the index: an episode's edit never shares
# the second of the recorded time, the only time core.checkStat=minimal compares (git's
# racy-entry check does not cover a same-second, same-size edit under it).
t=$(( $(date +%s) - 2 ))
git ls-files -z | xargs -0 -r touch -h -m -c -d "@$t" -- 2>/dev/null
git update-index -q --refresh >/dev/null 2>&1
exit 0
"#,
        ws = config.workspace_dir.display(),
    );
    let limits = Limits {
        timeout: Duration::from_secs(600),
        ..config.limits.clone()
    };
    let spec = spawn::Spec {
        config,
        program,
        limits: &limits,
        root: Root::Bind(base.to_owned()),
        network: false,
        argv: spawn::bash(Some(script)),
        stdin: false,
        extra_ro: Vec::new(),
    };
    let out = workspace::run_oneshot(&spec, limits.timeout)?;
    if out.exit_code != Some(0) {
        return Err(SandboxError::SetupFailed {
            command: "finalize base snapshot (git exclude / commit / refresh)".into(),
            exit_code: out.exit_code,
            timed_out: out.timed_out,
            output: out.output,
        });
    }
    Ok(())
}

/// Gives the whole tree to the sandbox uid (without following symlinks).
fn chown_tree(path: &Path, uid: u32, gid: u32) -> Result<()> {
    std::os::unix::fs::lchown(path, Some(uid), Some(gid))
        .map_err(SandboxError::io("chown", path))?;
    let meta = fs::symlink_metadata(path).map_err(SandboxError::io("stat", path))?;
    if meta.is_dir() {
        for entry in fs::read_dir(path).map_err(SandboxError::io("list", path))? {
            let entry = entry.map_err(SandboxError::io("list", path))?;
            chown_tree(&entry.path(), uid, gid)?;
        }
    }
    Ok(())
}

/// Fails unless `uid`/`gid` can traverse `path` and all its parents.
fn check_traversable(path: &Path, uid: u32, gid: u32) -> Result<()> {
    for dir in path.ancestors() {
        let meta = fs::metadata(dir).map_err(SandboxError::io("stat", dir))?;
        let mode = meta.mode();
        let ok = if meta.uid() == uid {
            mode & 0o100 != 0
        } else if meta.gid() == gid {
            mode & 0o010 != 0
        } else {
            mode & 0o001 != 0
        };
        if !ok {
            return Err(SandboxError::NotAccessible {
                path: dir.to_owned(),
                uid,
            });
        }
    }
    Ok(())
}
