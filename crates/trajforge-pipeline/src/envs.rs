//! Where rollouts run: the environment factories the pipelines draw from, and their two
//! adapters, fresh sandboxed workspaces of a repository ([`SandboxEnvs`]) and browser tabs
//! from a pool on a recorded or live site ([`BrowserEnvs`]).

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use trajforge_agent::{BoxFuture, Environment};
use trajforge_browser::{BrowserEnvironment, BrowserError, BrowserPool, EnvConfig, NetMode};
use trajforge_repo_env::RepoEnvironment;
use trajforge_sandbox::{Environment as SandboxEnv, SandboxError};

/// Why an environment could not be had or a test run could not be made.
#[derive(Debug, thiserror::Error)]
pub enum EnvError {
    /// The sandbox failed (workspace, session, command).
    #[error(transparent)]
    Sandbox(#[from] SandboxError),
    /// The browser failed (pool, tab, start page).
    #[error(transparent)]
    Browser(#[from] BrowserError),
    /// A patch to test does not apply to the base commit.
    #[error("the patch does not apply: {output}")]
    PatchDoesNotApply {
        /// What `git apply` said.
        output: String,
    },
    /// A command readying a workspace for a test run failed.
    #[error("preparing the workspace failed (exit {exit_code:?}): {output}")]
    PrepFailed {
        /// Its exit code.
        exit_code: Option<i32>,
        /// What it printed.
        output: String,
    },
    /// The blocking task that did the work ended abnormally.
    #[error("sandbox worker failed: {0}")]
    Worker(#[from] tokio::task::JoinError),
    /// A scripted environment's own failure (tests and benchmarks).
    #[error("{0}")]
    Other(String),
}

/// What a test command printed and how it exited.
pub type TestRun = (String, Option<i32>);

/// Creates fresh environments for code rollouts and runs tests; the sandbox in production.
pub trait EnvFactory: Send + Sync {
    /// A fresh workspace of the repository at its base commit.
    fn create(&self) -> BoxFuture<'_, Result<Box<dyn Environment>, EnvError>>;
    /// Run `cmd` in a fresh workspace with `patch` applied (none: the base); output and exit code.
    fn run_tests<'a>(
        &'a self,
        patch: Option<&'a str>,
        cmd: &'a str,
    ) -> BoxFuture<'a, Result<TestRun, EnvError>>;
}

/// A browsing session just opened on its start page.
pub struct WebSession {
    /// The environment the agent acts in.
    pub env: Box<dyn Environment>,
    /// The start page as the model sees it (URL, title, snapshot), for the task message:
    /// the first model call sees the page it is asked to act on.
    pub observation: String,
}

/// Opens a browser environment on a start page; the browser pool in production.
pub trait WebEnvFactory: Send + Sync {
    /// A fresh browsing session on `start_url`.
    fn open<'a>(&'a self, start_url: &'a str) -> BoxFuture<'a, Result<WebSession, EnvError>>;
}

/// Fresh sandboxed workspaces of one prepared repository environment.
#[derive(Debug, Clone)]
pub struct SandboxEnvs {
    env: SandboxEnv,
    command_timeout: Duration,
    test_timeout: Duration,
}

impl SandboxEnvs {
    /// Workspaces of `env`; commands stop after `command_timeout`, test runs after `test_timeout`.
    pub fn new(env: SandboxEnv, command_timeout: Duration, test_timeout: Duration) -> Self {
        SandboxEnvs {
            env,
            command_timeout,
            test_timeout,
        }
    }

    /// A fresh workspace as an agent environment (blocking: creates the overlay and the shell).
    pub fn workspace(env: &SandboxEnv, timeout: Duration) -> Result<RepoEnvironment, EnvError> {
        let ws = env.create_workspace()?;
        let session = ws.session()?;
        let root = env.config().workspace_dir.display().to_string();
        Ok(RepoEnvironment::new(session, &root, Some(timeout)).expecting_base(env.commit()))
    }
}

impl EnvFactory for SandboxEnvs {
    fn create(&self) -> BoxFuture<'_, Result<Box<dyn Environment>, EnvError>> {
        Box::pin(async move {
            let env = self.env.clone();
            let timeout = self.command_timeout;
            tokio::task::spawn_blocking(move || {
                Ok(Box::new(Self::workspace(&env, timeout)?) as Box<dyn Environment>)
            })
            .await?
        })
    }

    fn run_tests<'a>(
        &'a self,
        patch: Option<&'a str>,
        cmd: &'a str,
    ) -> BoxFuture<'a, Result<TestRun, EnvError>> {
        let steps = patch
            .map(|p| Prep::Apply(p.to_string()))
            .into_iter()
            .collect();
        Box::pin(self.run_after(steps, cmd.to_string()))
    }
}

/// One step readying a fresh workspace before a test command.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Prep {
    /// Apply this patch (`git apply`); failing is [`EnvError::PatchDoesNotApply`].
    Apply(String),
    /// Run this shell command; a non-zero exit is [`EnvError::PrepFailed`].
    Run(String),
}

impl SandboxEnvs {
    /// The prepared repository environment the workspaces come from.
    pub fn environment(&self) -> &SandboxEnv {
        &self.env
    }

    /// Run `cmd` in a fresh workspace after `steps`, in order; its output and exit code.
    pub async fn run_after(&self, steps: Vec<Prep>, cmd: String) -> Result<TestRun, EnvError> {
        let env = self.env.clone();
        let (step_timeout, timeout) = (self.command_timeout, self.test_timeout);
        tokio::task::spawn_blocking(move || {
            let ws = env.create_workspace()?;
            let mut session = ws.session()?;
            for step in steps {
                match step {
                    Prep::Apply(patch) => {
                        session.write_file("/tmp/trajforge.patch", patch.as_bytes())?;
                        let out = session.run(
                            "git apply --whitespace=nowarn /tmp/trajforge.patch && rm /tmp/trajforge.patch",
                            None,
                        )?;
                        if out.exit_code != Some(0) {
                            return Err(EnvError::PatchDoesNotApply {
                                output: out.output.trim().to_string(),
                            });
                        }
                    }
                    Prep::Run(command) => {
                        let out = session.run(&command, Some(step_timeout))?;
                        if out.exit_code != Some(0) {
                            return Err(EnvError::PrepFailed {
                                exit_code: out.exit_code,
                                output: out.output.trim().to_string(),
                            });
                        }
                    }
                }
            }
            let out = session.run(&cmd, Some(timeout))?;
            Ok((out.output, out.exit_code))
        })
        .await?
    }
}

/// Browser environments from a pool, on a run's network mode (replay or live).
pub struct BrowserEnvs {
    pool: Arc<BrowserPool>,
    mode: NetMode,
}

impl BrowserEnvs {
    /// Tabs of `pool` browsing in `mode`.
    pub fn new(pool: Arc<BrowserPool>, mode: NetMode) -> Self {
        BrowserEnvs { pool, mode }
    }
}

impl WebEnvFactory for BrowserEnvs {
    fn open<'a>(&'a self, start_url: &'a str) -> BoxFuture<'a, Result<WebSession, EnvError>> {
        Box::pin(async move {
            let env = BrowserEnvironment::start(
                &self.pool,
                start_url,
                self.mode.clone(),
                EnvConfig::default(),
            )
            .await?;
            Ok(WebSession {
                observation: env.observation(),
                env: Box::new(env),
            })
        })
    }
}

/// Why a folder cannot serve as a repository: episodes start from a commit of its own.
#[derive(Debug, thiserror::Error)]
pub enum RepoError {
    /// The path does not resolve.
    #[error("{path}: {source}")]
    Missing {
        /// As given.
        path: PathBuf,
        /// Why it does not resolve.
        source: std::io::Error,
    },
    /// The path is a file.
    #[error("{path}: is not a directory")]
    NotADirectory {
        /// As given.
        path: PathBuf,
    },
    /// git could not be run.
    #[error("cannot run git: {0}")]
    Git(#[source] std::io::Error),
    /// No git repository there.
    #[error("{path}: not a git repository")]
    NotARepository {
        /// As given.
        path: PathBuf,
    },
    /// Inside a repository, but not its top level.
    #[error("{path} is inside the git repository {top} but is not its top level")]
    NotTopLevel {
        /// As given.
        path: PathBuf,
        /// The repository's top level.
        top: PathBuf,
    },
}

/// The repository's canonical path; it must be the top level of a git repository, since
/// workspaces are snapshots of a commit.
pub fn check_repository(repo: &Path) -> Result<PathBuf, RepoError> {
    let canonical = std::fs::canonicalize(repo).map_err(|source| RepoError::Missing {
        path: repo.to_path_buf(),
        source,
    })?;
    if !canonical.is_dir() {
        return Err(RepoError::NotADirectory {
            path: repo.to_path_buf(),
        });
    }
    let out = std::process::Command::new("git")
        .arg("-C")
        .arg(&canonical)
        .args(["rev-parse", "--show-toplevel"])
        .output()
        .map_err(RepoError::Git)?;
    if !out.status.success() {
        return Err(RepoError::NotARepository {
            path: repo.to_path_buf(),
        });
    }
    let top = PathBuf::from(String::from_utf8_lossy(&out.stdout).trim());
    let top = std::fs::canonicalize(&top).unwrap_or(top);
    if top != canonical {
        return Err(RepoError::NotTopLevel {
            path: repo.to_path_buf(),
            top,
        });
    }
    Ok(canonical)
}

/// `/var/tmp/trajforge/env-<hash of the repository path>` (or under `$TRAJFORGE_WORK_DIR`):
/// reused across runs, and reachable by the unprivileged uid the sandbox uses when trajforge
/// runs as root.
pub fn default_work_dir(repo: &Path) -> PathBuf {
    let base = std::env::var_os("TRAJFORGE_WORK_DIR")
        .filter(|d| !d.is_empty())
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("/var/tmp/trajforge"));
    // FNV-1a: stable across runs and releases, unlike std's hasher.
    let hash = trajforge_hash::fnv1a64(repo.as_os_str().as_encoded_bytes());
    base.join(format!("env-{hash:016x}"))
}
