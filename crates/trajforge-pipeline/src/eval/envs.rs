//! Sandboxed environments per task base commit: one snapshot per (repository, commit,
//! set-up command), prepared once when the first job needs it and shared by its seeds.
//!
//! The sandbox keeps one base snapshot per work folder and replaces it when asked for
//! another commit (issue 19), so each (commit, set-up) gets a work folder of its own under
//! the repository's: tasks at many commits can run side by side.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::sync::OnceCell;

use crate::envs::{EnvError, SandboxEnvs};
use crate::error::RunError;
use crate::prepare::SandboxSpec;

/// Environments of one repository at the commits its tasks start from.
#[derive(Debug)]
pub struct TaskEnvs {
    repo: PathBuf,
    work_dir: PathBuf,
    command_timeout: Duration,
    test_timeout: Duration,
    prepared: Mutex<HashMap<PathBuf, Arc<OnceCell<SandboxEnvs>>>>,
}

/// The work folder of the snapshot at `commit` after `setup`, under the repository's `work_dir`.
pub fn snapshot_dir(work_dir: &Path, commit: &str, setup: Option<&str>) -> PathBuf {
    let short: String = commit
        .chars()
        .filter(char::is_ascii_alphanumeric)
        .take(12)
        .collect();
    let key = trajforge_hash::fnv1a64(format!("{commit}\0{}", setup.unwrap_or("")).as_bytes());
    work_dir.join("commits").join(format!("{short}-{key:016x}"))
}

impl TaskEnvs {
    /// Environments of `repo` under `work_dir`; agent commands stop after `command_timeout`,
    /// test runs after `test_timeout`.
    pub fn new(
        repo: &Path,
        work_dir: &Path,
        command_timeout: Duration,
        test_timeout: Duration,
    ) -> Self {
        TaskEnvs {
            repo: repo.to_path_buf(),
            work_dir: work_dir.to_path_buf(),
            command_timeout,
            test_timeout,
            prepared: Mutex::new(HashMap::new()),
        }
    }

    /// Fresh workspaces at `commit` after `setup`, the snapshot made on first use.
    pub async fn at(&self, commit: &str, setup: Option<&str>) -> Result<SandboxEnvs, RunError> {
        let dir = snapshot_dir(&self.work_dir, commit, setup);
        let cell = {
            let mut map = self
                .prepared
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner);
            Arc::clone(map.entry(dir.clone()).or_default())
        };
        let spec = SandboxSpec {
            commit: commit.to_string(),
            setup: setup.map(str::to_string),
            command_timeout: self.command_timeout,
            work_dir: Some(dir),
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_commit_and_setup_has_its_own_folder() {
        let w = Path::new("/w");
        let a = snapshot_dir(w, "0123456789abcdef", None);
        assert!(
            a.display()
                .to_string()
                .starts_with("/w/commits/0123456789ab-"),
            "{}",
            a.display()
        );
        assert_eq!(a, snapshot_dir(w, "0123456789abcdef", None));
        assert_ne!(a, snapshot_dir(w, "0123456789abcdee", None));
        assert_ne!(
            a,
            snapshot_dir(w, "0123456789abcdef", Some("pip install -e ."))
        );
        // Revision names with slashes stay one folder deep.
        let b = snapshot_dir(w, "origin/main~3", None);
        assert_eq!(b.parent(), Some(Path::new("/w/commits")));
    }
}
