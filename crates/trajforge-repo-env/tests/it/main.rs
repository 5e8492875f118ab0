//! Integration tests of the repository environment over the real sandbox: work folders
//! shared by concurrent runs, and the patch under racing edits.

use std::fs;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use trajforge_agent::Environment as _;
use trajforge_repo_env::RepoEnvironment;
use trajforge_repo_env::workdir;
use trajforge_sandbox::{Environment, EnvironmentOptions, Limits};
use trajforge_teacher::ToolCall;
use trajforge_testkit::runtime;

/// A temp dir the unprivileged sandbox uid can traverse (tempfile makes them 0700).
fn open_tempdir() -> tempfile::TempDir {
    let dir = tempfile::Builder::new()
        .prefix("tf-repo-env-test")
        .tempdir()
        .expect("tempdir");
    fs::set_permissions(dir.path(), fs::Permissions::from_mode(0o755)).expect("chmod");
    dir
}

fn git(dir: &Path, args: &[&str]) -> String {
    let out = trajforge_testkit::run_ok(
        Command::new("git")
            .arg("-C")
            .arg(dir)
            .args(["-c", "user.name=t", "-c", "user.email=t@t"])
            .args(["-c", "init.defaultBranch=main"])
            .args(args),
        &format!("git {args:?}"),
    );
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}

/// A repository with two commits; returns it and both commit ids (older first).
fn two_commit_repo(root: &Path) -> (PathBuf, String, String) {
    let repo = root.join("repo");
    fs::create_dir_all(&repo).expect("mkdir");
    fs::write(repo.join("lib.py"), "def f():\n    return 1\n").expect("write");
    fs::write(repo.join("README"), "first\n").expect("write");
    git(&repo, &["init", "-q"]);
    git(&repo, &["add", "-A"]);
    git(&repo, &["commit", "-q", "-m", "first"]);
    let first = git(&repo, &["rev-parse", "HEAD"]);
    fs::write(repo.join("README"), "second\n").expect("write");
    fs::write(repo.join("other.py"), "x = 1\n").expect("write");
    git(&repo, &["add", "-A"]);
    git(&repo, &["commit", "-q", "-m", "second"]);
    let second = git(&repo, &["rev-parse", "HEAD"]);
    (repo, first, second)
}

/// A two-commit repository in a fresh temp dir with its first commit prepared in `work/`.
struct Prepared {
    /// Removed when the test ends.
    _tmp: tempfile::TempDir,
    repo: PathBuf,
    first: String,
    root: PathBuf,
    env: Environment,
}

impl Prepared {
    fn new() -> Self {
        let tmp = open_tempdir();
        let (repo, first, _) = two_commit_repo(tmp.path());
        let root = tmp.path().join("work");
        let env = workdir::prepare(&root, &repo, &first, None, &options()).expect("prepare");
        Prepared {
            _tmp: tmp,
            repo,
            first,
            root,
            env,
        }
    }

    /// The same commit prepared again in the same work folder.
    fn again(&self) -> Environment {
        workdir::prepare(&self.root, &self.repo, &self.first, None, &options()).expect("prepare")
    }
}

fn options() -> EnvironmentOptions {
    let mut options = EnvironmentOptions::new("unused");
    options.sandbox.limits = Limits {
        timeout: Duration::from_secs(30),
        memory_bytes: Some(512 << 20),
        max_processes: Some(64),
        max_file_size: Some(64 << 20),
        max_open_files: Some(1024),
        tmp_size: 32 << 20,
        max_output_bytes: 64 * 1024,
    };
    options
}

/// One episode: writes `text` to `file` with the editor, waits, and hands in the patch.
fn episode(env: &trajforge_sandbox::Environment, file: &str, text: &str) -> Result<String, String> {
    let ws = env.create_workspace().expect("workspace");
    let session = ws.session().expect("session");
    let mut repo_env = RepoEnvironment::new(session, "/workspace", Some(Duration::from_secs(20)))
        .expecting_base(env.commit());
    runtime().block_on(async {
        let args = serde_json::json!({"command": "create", "path": format!("/workspace/{file}"), "file_text": text});
        let call = ToolCall { id: "1".into(), name: "str_replace_editor".into(), arguments: args.to_string(), parse_error: None };
        let obs = repo_env.call(&call).await;
        assert!(!obs.error, "{}", obs.text);
        std::thread::sleep(Duration::from_millis(300));
        let outcome = repo_env.finish().await;
        match (outcome.patch, outcome.error) {
            (Some(p), None) => Ok(p),
            (_, e) => Err(e.unwrap_or_default()),
        }
    })
}

#[test]
fn two_runs_at_different_commits_keep_both_patches() {
    let tmp = open_tempdir();
    let (repo, first, second) = two_commit_repo(tmp.path());
    let root = tmp.path().join("work");
    // Each run prepares its commit in the same work folder while the other is mid-episode.
    let runs: Vec<_> = [(first.clone(), "a.txt"), (second.clone(), "b.txt")]
        .into_iter()
        .map(|(commit, file)| {
            let (repo, root) = (repo.clone(), root.clone());
            std::thread::spawn(move || {
                let env =
                    workdir::prepare(&root, &repo, &commit, None, &options()).expect("prepare");
                assert_eq!(env.commit(), commit);
                episode(&env, file, &format!("made at {commit}\n"))
            })
        })
        .collect();
    let patches: Vec<String> = runs
        .into_iter()
        .map(|r| r.join().expect("thread").expect("patch"))
        .collect();
    assert!(
        patches[0].contains("+++ b/a.txt") && patches[0].contains(&format!("+made at {first}")),
        "{}",
        patches[0]
    );
    assert!(
        patches[1].contains("+++ b/b.txt") && patches[1].contains(&format!("+made at {second}")),
        "{}",
        patches[1]
    );
    assert!(!patches[0].contains("other.py") && !patches[1].contains("other.py"));
    // Preparing again reuses both snapshots, each in its own folder.
    let a = workdir::prepare(&root, &repo, "HEAD~1", None, &options()).expect("again");
    let b = workdir::prepare(&root, &repo, "main", None, &options()).expect("again");
    assert!(a.reused() && b.reused());
    assert_ne!(a.base_dir(), b.base_dir());
}

#[test]
fn a_snapshot_in_use_is_not_removed_and_is_removed_once_released() {
    let prepared = Prepared::new();
    let env = &prepared.env;
    let again = prepared.again();
    let dir = env.work_dir().to_path_buf();
    assert_eq!(dir, again.work_dir());
    // Two uses in this process: the first release keeps it.
    assert!(!workdir::release_and_remove(&dir).expect("release"));
    assert!(env.base_dir().join(".git").is_dir());
    // Another live process using it keeps it too.
    let holder = Command::new("flock")
        .args(["--shared", "--no-fork"])
        .arg(dir.join("use.lock"))
        .args(["sleep", "30"])
        .spawn()
        .expect("flock");
    std::thread::sleep(Duration::from_millis(300));
    assert!(!workdir::release_and_remove(&dir).expect("release"));
    assert!(env.base_dir().join(".git").is_dir());
    let mut holder = holder;
    holder.kill().expect("kill");
    holder.wait().expect("wait");
    // Our last use ends: removed (release_and_remove waits out a child another test thread
    // is starting, which holds a copy of our lock's descriptor until it execs).
    assert!(workdir::release_and_remove(&dir).expect("release"));
    assert!(!dir.exists());
}

#[test]
fn workspaces_of_dead_processes_are_reclaimed_on_start() {
    let prepared = Prepared::new();
    let env = &prepared.env;
    let episodes = env.work_dir().join("episodes");
    let mut child = Command::new("true").spawn().expect("spawn");
    let dead = child.id();
    child.wait().expect("wait");
    let stale = episodes.join(format!("ws-{dead}-0"));
    fs::create_dir_all(stale.join("upper/deep")).expect("stale");
    // overlayfs leaves a mode-000 folder behind.
    fs::create_dir_all(stale.join("work/work")).expect("stale");
    fs::set_permissions(stale.join("work/work"), fs::Permissions::from_mode(0o000)).expect("chmod");
    let live = env.create_workspace().expect("workspace");
    let _again = prepared.again();
    assert!(!stale.exists(), "the dead process's workspace is reclaimed");
    assert!(live.path().is_dir(), "a live process's workspace is kept");
}

#[test]
fn a_workspace_whose_base_vanished_is_an_error_not_a_patch() {
    let prepared = Prepared::new();
    let env = &prepared.env;
    let ws = env.create_workspace().expect("workspace");
    let session = ws.session().expect("session");
    let mut repo_env = RepoEnvironment::new(session, "/workspace", Some(Duration::from_secs(20)))
        .expecting_base(env.commit());
    // What an older trajforge preparing another commit in this folder did to the base.
    fs::remove_dir_all(env.base_dir()).expect("remove base");
    let outcome = runtime().block_on(repo_env.finish());
    assert_eq!(outcome.patch, None);
    let error = outcome.error.expect("an error");
    assert!(error.contains("no longer holds the base commit"), "{error}");
}

#[test]
fn an_edit_racing_a_fresh_snapshot_is_never_missing_from_the_patch() {
    // A same-size edit stamped with the very instant the snapshot's index was written: the
    // time of an edit made right after a fresh snapshot, within the same second as its
    // checkout. Only git's racy-entry check (the index's own time) tells it from the base.
    for round in 0..6 {
        let prepared = Prepared::new();
        let env = &prepared.env;
        let index = fs::metadata(env.base_dir().join(".git/index")).expect("index");
        let stamp = format!("@{}.{:09}", index.mtime(), index.mtime_nsec());
        let ws = env.create_workspace().expect("workspace");
        let mut session = ws.session().expect("session");
        session
            .write_file("/workspace/lib.py", b"def f():\n    return 2\n")
            .expect("write");
        let out = session
            .run(&format!("touch -m -d {stamp} /workspace/lib.py"), None)
            .expect("touch");
        assert_eq!(out.exit_code, Some(0), "{}", out.output);
        let patch = session.diff().expect("diff");
        assert!(
            patch.contains("+    return 2"),
            "round {round}: edit missing from {patch:?}"
        );
        let patch = ws_diff_after(session, &ws);
        assert!(
            patch.contains("+    return 2"),
            "round {round}: edit missing from {patch:?}"
        );
    }
}

/// The patch as a one-shot sandbox computes it, once the session is gone.
fn ws_diff_after(session: trajforge_sandbox::Session, ws: &trajforge_sandbox::Workspace) -> String {
    drop(session);
    ws.diff().expect("diff")
}
