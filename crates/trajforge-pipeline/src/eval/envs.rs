//! Sandboxed environments per task base commit: one snapshot per (repository, commit,
//! set-up command), prepared once when the first job needs it and shared by its seeds.
//! Each snapshot has its own folder under the repository's work folder
//! ([`trajforge_repo_env::workdir`]): tasks at many commits can run side by side.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::sync::OnceCell;
use trajforge_sandbox::Backend;

use crate::envs::{EnvError, SandboxEnvs};
use crate::error::RunError;
use crate::prepare::SandboxSpec;

/// A base commit and set-up command.
type SnapshotKey = (String, Option<String>);

/// Environments of one repository at the commits its tasks start from.
#[derive(Debug)]
pub struct TaskEnvs {
    repo: PathBuf,
    work_dir: PathBuf,
    command_timeout: Duration,
    test_timeout: Duration,
    backend: Backend,
    prepared: Mutex<HashMap<SnapshotKey, Arc<OnceCell<SandboxEnvs>>>>,
}

impl TaskEnvs {
    /// Environments of `repo` under `work_dir`, run in `backend`; agent commands stop after
    /// `command_timeout`, test runs after `test_timeout`.
    pub fn new(
        repo: &Path,
        work_dir: &Path,
        (command_timeout, test_timeout): (Duration, Duration),
        backend: Backend,
    ) -> Self {
        TaskEnvs {
            repo: repo.to_path_buf(),
            work_dir: work_dir.to_path_buf(),
            command_timeout,
            test_timeout,
            backend,
            prepared: Mutex::new(HashMap::new()),
        }
    }

    /// Fresh workspaces at `commit` after `setup`, the snapshot made on first use.
    pub async fn at(&self, commit: &str, setup: Option<&str>) -> Result<SandboxEnvs, RunError> {
        let cell = {
            let mut map = self
                .prepared
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner);
            let key = (commit.to_string(), setup.map(str::to_string));
            Arc::clone(map.entry(key).or_default())
        };
        let spec = SandboxSpec {
            commit: commit.to_string(),
            setup: setup.map(str::to_string),
            command_timeout: self.command_timeout,
            work_dir: Some(self.work_dir.clone()),
            backend: self.backend.clone(),
        };
        let repo = self.repo.clone();
        let (command_timeout, test_timeout) = (self.command_timeout, self.test_timeout);
        cell.get_or_try_init(|| async move {
            let environment = tokio::task::spawn_blocking(move || spec.prepare(&repo))
                .await
                .map_err(|e| RunError::Environment(EnvError::Worker(e)))??;
            Ok(SandboxEnvs::new(environment, command_timeout, test_timeout))
        })
        .await
        .cloned()
    }
}
