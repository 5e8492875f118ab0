//! Helpers shared by the integration tests.
#![allow(dead_code)]

use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use trajforge_sandbox::{Environment, EnvironmentOptions, Limits, Workspace};

/// Fails loudly when bubblewrap is missing: CI installs it.
pub fn require_bwrap() {
    let found = ["/usr/bin/bwrap", "/usr/local/bin/bwrap"]
        .iter()
        .any(|p| Path::new(p).is_file());
    assert!(found, "bubblewrap not installed: run scripts/setup.sh");
}

/// A temp dir the unprivileged sandbox uid can traverse (tempfile makes them 0700).
pub fn open_tempdir() -> tempfile::TempDir {
    let dir = tempfile::Builder::new()
        .prefix("tf-sandbox-test")
        .tempdir()
        .expect("tempdir");
    fs::set_permissions(dir.path(), fs::Permissions::from_mode(0o755)).expect("chmod");
    dir
}

/// Runs git in `dir`, panicking on failure.
pub fn git(dir: &Path, args: &[&str]) {
    let status = Command::new("git")
        .arg("-C")
        .arg(dir)
        .args([
            "-c",
            "user.name=t",
            "-c",
            "user.email=t@t",
            "-c",
            "init.defaultBranch=main",
        ])
        .args(args)
        .status()
        .expect("git");
    assert!(status.success(), "git {args:?} failed");
}

/// A small repository with a text file, a file to delete and a binary file.
pub fn small_repo(root: &Path) -> PathBuf {
    let repo = root.join("repo");
    fs::create_dir_all(repo.join("src")).expect("mkdir");
    fs::write(repo.join("src/lib.py"), "def f():\n    return 1\n").expect("write");
    fs::write(repo.join("gone.txt"), "to be deleted\n").expect("write");
    fs::write(repo.join("blob.bin"), [0u8, 1, 2, 3, 0, 255]).expect("write");
    fs::write(repo.join("README"), "hello\n").expect("write");
    git(&repo, &["init", "-q"]);
    git(&repo, &["add", "-A"]);
    git(&repo, &["commit", "-q", "-m", "base"]);
    fs::write(repo.join("README"), "later history\n").expect("write");
    git(&repo, &["commit", "-q", "-am", "future"]);
    repo
}

/// Small limits for tests.
pub fn test_limits() -> Limits {
    Limits {
        timeout: Duration::from_secs(20),
        memory_bytes: Some(512 << 20),
        max_processes: Some(64),
        max_file_size: Some(64 << 20),
        max_open_files: Some(1024),
        tmp_size: 32 << 20,
        max_output_bytes: 64 * 1024,
    }
}

/// Environment options for `dir` with the small [`test_limits`].
pub fn test_options(dir: PathBuf) -> EnvironmentOptions {
    let mut options = EnvironmentOptions::new(dir);
    options.sandbox.limits = test_limits();
    options.sandbox.landlock_helper = Some(env!("CARGO_BIN_EXE_trajforge-landlock").into());
    options
}

/// Prepares an environment for `repo` at `rev` under `root/env`.
pub fn prepare(root: &Path, repo: &Path, rev: &str, setup: Option<&str>) -> Environment {
    require_bwrap();
    let mut options = test_options(root.join("env"));
    options.commit = Some(rev.to_owned());
    Environment::prepare(repo, setup, &options).expect("prepare environment")
}

/// An environment over [`small_repo`] (in `root/repo`) at `rev`, and one workspace in it.
pub fn small_workspace(root: &Path, rev: &str) -> (Environment, Workspace) {
    let repo = small_repo(root);
    let env = prepare(root, &repo, rev, None);
    let ws = env.create_workspace().expect("workspace");
    (env, ws)
}
