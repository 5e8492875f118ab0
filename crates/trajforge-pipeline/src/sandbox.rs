//! Environments for the pipeline from the rootless sandbox.

use std::time::Duration;

use trajforge_agent::{BoxFuture, Environment};
use trajforge_repo_env::RepoEnvironment;
use trajforge_sandbox::Environment as SandboxEnv;

use crate::code::EnvFactory;

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
}

impl EnvFactory for SandboxEnvs {
    fn create(&self) -> BoxFuture<'_, Result<Box<dyn Environment>, String>> {
        Box::pin(async move {
            let env = self.env.clone();
            let timeout = self.command_timeout;
            tokio::task::spawn_blocking(move || {
                let ws = env.create_workspace().map_err(|e| e.to_string())?;
                let session = ws.session().map_err(|e| e.to_string())?;
                let root = env.config().workspace_dir.display().to_string();
                Ok(
                    Box::new(RepoEnvironment::new(session, &root, Some(timeout)))
                        as Box<dyn Environment>,
                )
            })
            .await
            .map_err(|e| format!("sandbox worker failed: {e}"))?
        })
    }

    fn run_tests<'a>(
        &'a self,
        patch: Option<&'a str>,
        cmd: &'a str,
    ) -> BoxFuture<'a, Result<(String, Option<i32>), String>> {
        let env = self.env.clone();
        let timeout = self.test_timeout;
        let patch = patch.map(String::from);
        let cmd = cmd.to_string();
        Box::pin(async move {
            tokio::task::spawn_blocking(move || {
                let ws = env.create_workspace().map_err(|e| e.to_string())?;
                let mut session = ws.session().map_err(|e| e.to_string())?;
                if let Some(patch) = patch {
                    session.write_file("/tmp/trajforge.patch", patch.as_bytes()).map_err(|e| e.to_string())?;
                    let out = session
                        .run("git apply --whitespace=nowarn /tmp/trajforge.patch && rm /tmp/trajforge.patch", None)
                        .map_err(|e| e.to_string())?;
                    if out.exit_code != Some(0) {
                        return Err(format!("the patch does not apply: {}", out.output.trim()));
                    }
                }
                let out = session.run(&cmd, Some(timeout)).map_err(|e| e.to_string())?;
                Ok((out.output, out.exit_code))
            })
            .await
            .map_err(|e| format!("sandbox worker failed: {e}"))?
        })
    }
}
