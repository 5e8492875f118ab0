//! `trajforge run`: real episodes in the sandbox on a real repository, against the scripted
//! fake teacher, through the real binary. The episode tests run once per sandbox backend
//! (`run::bwrap::*`, `run::podman::*`, see [`episode_tests`]).

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use serde_json::json;
use trajforge_testkit::{FakeServer, Reply, Script, Step, run_ok};

use crate::repo_root;

/// A git repository made from the shipped sample (more-itertools), in a fresh folder.
pub fn sample_git_repo(dir: &Path) -> PathBuf {
    sample_git_repo_with_env(dir, &[])
}

/// [`sample_git_repo`] with extra environment for git (fixed dates give a fixed commit id).
pub fn sample_git_repo_with_env(dir: &Path, envs: &[(&str, &str)]) -> PathBuf {
    let repo = dir.join("sample");
    copy_dir(&repo_root().join("examples/sample-repo"), &repo);
    let git = |args: &[&str]| {
        run_ok(
            Command::new("git")
                .args(["-c", "user.name=t", "-c", "user.email=t@example.invalid"])
                .args(args)
                .envs(envs.iter().copied())
                .current_dir(&repo),
            &format!("git {args:?}"),
        );
    };
    git(&["init", "-q"]);
    git(&["add", "-A"]);
    git(&["commit", "-qm", "base"]);
    repo
}

fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).expect("mkdir");
    for entry in std::fs::read_dir(from).expect("read_dir") {
        let entry = entry.expect("entry");
        let target = to.join(entry.file_name());
        if entry.file_type().expect("type").is_dir() {
            copy_dir(&entry.path(), &target);
        } else {
            std::fs::copy(entry.path(), &target).expect("copy");
        }
    }
}

/// A work folder the sandbox's unprivileged user can reach.
pub fn work_dir(dir: &Path) -> PathBuf {
    let work = dir.join("work");
    std::fs::create_dir_all(&work).expect("mkdir");
    for p in [dir, work.as_path()] {
        std::fs::set_permissions(p, std::fs::Permissions::from_mode(0o755)).expect("chmod");
    }
    work
}

async fn trajforge_async(args: Vec<String>, envs: Vec<(&'static str, &'static str)>) -> Output {
    tokio::task::spawn_blocking(move || {
        Command::new(env!("CARGO_BIN_EXE_trajforge"))
            .args(&args)
            .envs(envs)
            .env_remove("OPENAI_API_KEY")
            .output()
            .expect("runs")
    })
    .await
    .expect("join")
}

/// A temporary folder holding the sample repository, a work folder for the sandbox and
/// the path for the trajectory: (folder, repository, work folder, trajectory file).
fn episode_scene() -> (tempfile::TempDir, PathBuf, PathBuf, PathBuf) {
    let dir = tempfile::tempdir().expect("tempdir");
    let repo = sample_git_repo(dir.path());
    let work = work_dir(dir.path());
    let out = dir.path().join("traj.json");
    (dir, repo, work, out)
}

/// The sandbox an episode test runs in.
#[derive(Debug, Clone)]
pub enum Sandbox {
    /// bubblewrap, the default.
    Bwrap,
    /// A podman container of this image.
    Podman(String),
    /// A container of this image started by podman-docker's `docker` (podman behind docker's
    /// command line), with the environment it needs ([`trajforge_testkit::podman_docker`]).
    Docker(String, [(&'static str, &'static str); 1]),
}

impl Sandbox {
    /// The environment of a `trajforge` run in this sandbox.
    fn envs(&self) -> Vec<(&'static str, &'static str)> {
        match self {
            Sandbox::Docker(_, envs) => envs.to_vec(),
            _ => Vec::new(),
        }
    }
}

/// Generates each listed `async fn NAME(sandbox: Sandbox)` as a test per backend:
/// `bwrap::NAME` with the default sandbox and `podman::NAME` in a container of the locally
/// built test image (skipped with a note where podman is absent, unless `CI=true`).
macro_rules! episode_tests {
    ($($name:ident),* $(,)?) => {
        /// The episode tests with bubblewrap.
        mod bwrap {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $name() {
                    super::$name(super::Sandbox::Bwrap).await;
                }
            )*
        }
        /// The same episode tests in podman containers.
        mod podman {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $name() {
                    if let Some(image) = trajforge_testkit::podman_image() {
                        super::$name(super::Sandbox::Podman(image)).await;
                    }
                }
            )*
        }
    };
}

/// The first episode test through docker's command line: podman-docker's `docker`, which
/// runs podman. This checks trajforge's docker arguments (the image check, the workspace
/// overlay as an anonymous volume, limits, the persistent shell, the patch) against a
/// docker-compatible command line, not against a docker engine, which is not available here.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn docker_cli_a_real_episode_edits_runs_and_submits() {
    if let Some((image, envs)) = trajforge_testkit::podman_docker() {
        a_real_episode_edits_runs_and_submits(Sandbox::Docker(image, envs)).await;
    }
}

episode_tests!(
    a_real_episode_edits_runs_and_submits,
    a_command_cannot_touch_the_host_outside_the_workspace,
    two_runs_on_one_repository_at_other_commits_keep_both_patches,
    observations_reach_the_terminal_escaped_and_a_repeating_episode_ends_stuck,
    the_projects_tests_run_and_a_hung_command_is_interrupted,
);

fn run_args(
    server: &FakeServer,
    repo: &Path,
    work: &Path,
    out: &Path,
    sandbox: &Sandbox,
) -> Vec<String> {
    let mut args: Vec<String> = [
        "run",
        "--repo",
        &repo.display().to_string(),
        "--task",
        "There may be a problem with chunked in more_itertools/more.py. Investigate.",
        "--teacher",
        &server.url(),
        "--model",
        "fake",
        "--work-dir",
        &work.display().to_string(),
        "--out",
        &out.display().to_string(),
        "--retries",
        "1",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    match sandbox {
        Sandbox::Bwrap => {}
        Sandbox::Podman(image) => {
            args.extend(["--sandbox", "podman", "--image", image].map(String::from));
        }
        Sandbox::Docker(image, _) => {
            args.extend(["--sandbox", "docker", "--image", image].map(String::from));
        }
    }
    args
}

async fn a_real_episode_edits_runs_and_submits(sandbox: Sandbox) {
    let (_dir, repo, work, out) = episode_scene();
    let script = Script::sequence(vec![
        Step::Reply(
            Reply::new()
                .reasoning("Find the function first.")
                .tool_call(
                    "bash",
                    json!({"command": "cd more_itertools && grep -n 'def chunked' more.py"}),
                ),
        ),
        Step::tool_call(
            "str_replace_editor",
            json!({"command": "view", "path": "/workspace/more_itertools/more.py", "view_range": [1, 3]}),
        ),
        Step::tool_call(
            "str_replace_editor",
            json!({"command": "str_replace", "path": "/workspace/more_itertools/more.py", "old_str": "def chunked(iterable, n, strict=False):", "new_str": "def chunked(iterable, n, strict=False):  # checked"}),
        ),
        Step::tool_call(
            "bash",
            json!({"command": "pwd && python3 -c 'import sys; sys.path.insert(0, \"..\"); import more_itertools as m; print(list(m.chunked([1, 2, 3], 2)))'"}),
        ),
        Step::tool_call(
            "str_replace_editor",
            json!({"command": "create", "path": "/workspace/repro.py", "file_text": "print('repro')\n"}),
        ),
        Step::tool_call("submit", json!({})),
        Step::tool_call("bash", json!({"command": "rm /workspace/repro.py"})),
        Step::tool_call("submit", json!({})),
    ]);
    let server = FakeServer::start(script).await;
    let mut envs = vec![("TRAJFORGE_API_KEY", "sk-very-secret-123")];
    envs.extend(sandbox.envs());
    let output = trajforge_async(run_args(&server, &repo, &work, &out, &sandbox), envs).await;
    let stderr = String::from_utf8_lossy(&output.stderr).to_string();
    let stdout = String::from_utf8_lossy(&output.stdout).to_string();
    assert_eq!(output.status.code(), Some(0), "stderr:\n{stderr}");
    // The patch on stdout: the edit, not the deleted scratch file.
    assert!(
        stdout.contains("+def chunked(iterable, n, strict=False):  # checked"),
        "stdout:\n{stdout}\nstderr:\n{stderr}"
    );
    assert!(!stdout.contains("repro.py"), "{stdout}");
    // Live output shows each step, and the summary line ends the run.
    assert!(
        stderr.contains("step 8") && stderr.contains("submitted after 8 steps"),
        "{stderr}"
    );

    let traj: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&out).expect("trajectory file"))
            .expect("json");
    assert_eq!(traj["exit"]["status"], "submitted");
    let steps = traj["steps"].as_array().expect("steps");
    assert_eq!(steps.len(), 8);
    let obs = |i: usize| {
        steps[i]["tools"][0]["observation"]["text"]
            .as_str()
            .expect("text")
            .to_string()
    };
    assert!(
        obs(0).contains("def chunked(iterable, n, strict=False):"),
        "{}",
        obs(0)
    );
    assert!(obs(1).contains("     1\t"), "{}", obs(1));
    assert!(obs(2).contains("has been edited"), "{}", obs(2));
    // The shell persisted: `cd more_itertools` from step 1 still holds in step 4.
    assert!(
        obs(3).contains("/workspace/more_itertools") && obs(3).contains("[[1, 2], [3]]"),
        "{}",
        obs(3)
    );
    assert!(
        obs(5).contains("repro.py") && obs(5).contains("call submit again"),
        "{}",
        obs(5)
    );
    assert_eq!(
        steps[0]["assistant"]["reasoning"],
        "Find the function first."
    );
    assert_eq!(traj["tools"].as_array().expect("tools").len(), 3);
    assert!(
        traj["outcome"]["patch"]
            .as_str()
            .expect("patch")
            .contains("# checked")
    );

    // The key reached the server and nothing else.
    let recorded = server.recorded();
    assert_eq!(
        recorded[0].header("authorization"),
        Some("Bearer sk-very-secret-123")
    );
    let file = std::fs::read_to_string(&out).expect("trajectory file");
    for text in [&file, &stderr, &stdout] {
        assert!(!text.contains("sk-very-secret-123"));
    }
    match sandbox {
        Sandbox::Bwrap => {}
        Sandbox::Podman(_) => assert_engine_folder(&work, "podman"),
        Sandbox::Docker(..) => assert_engine_folder(&work, "docker"),
    }
}

/// Asserts that the work folder `work` holds snapshots made with `engine` (`podman`,
/// `docker`): a container backend keeps them in a folder named by engine and image.
#[track_caller]
pub fn assert_engine_folder(work: &Path, engine: &str) {
    let names: Vec<String> = std::fs::read_dir(work)
        .expect("work folder")
        .map(|e| e.expect("entry").file_name().to_string_lossy().into_owned())
        .collect();
    assert!(
        names.iter().any(|n| n.starts_with(&format!("{engine}-"))),
        "no {engine} snapshots in {}: {names:?}",
        work.display()
    );
}

async fn a_command_cannot_touch_the_host_outside_the_workspace(sandbox: Sandbox) {
    let (dir, repo, work, out) = episode_scene();
    let marker = dir.path().join("host-marker.txt");
    std::fs::write(&marker, "host secret").expect("marker");
    let attack = format!(
        "cat {m}; echo pwned > {m}; cat /root/.ssh/id_rsa; ls {repo}; curl -s http://127.0.0.1:1/ || echo no-network",
        m = marker.display(),
        repo = repo.display()
    );
    let script = Script::sequence(vec![
        Step::tool_call("bash", json!({"command": attack})),
        Step::tool_call("submit", json!({})),
        Step::tool_call("submit", json!({})),
    ]);
    let server = FakeServer::start(script).await;
    let output = trajforge_async(run_args(&server, &repo, &work, &out, &sandbox), vec![]).await;
    assert_eq!(
        output.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    assert_eq!(
        std::fs::read_to_string(&marker).expect("marker"),
        "host secret"
    );
    let traj: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&out).expect("file")).expect("json");
    let text = traj["steps"][0]["tools"][0]["observation"]["text"]
        .as_str()
        .expect("text")
        .to_string();
    assert!(!text.contains("host secret"), "{text}");
    assert!(
        text.contains("No such file") || text.contains("Read-only"),
        "{text}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn malformed_calls_end_the_episode_with_exit_3() {
    let (_dir, repo, work, out) = episode_scene();
    let bad = || Step::Reply(Reply::new().raw_tool_call("bash", "{\"command\": "));
    let server = FakeServer::start(Script::sequence(vec![bad(), bad(), bad()])).await;
    let output = trajforge_async(
        run_args(&server, &repo, &work, &out, &Sandbox::Bwrap),
        vec![],
    )
    .await;
    assert_eq!(output.status.code(), Some(3));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("malformed calls after 3 steps"), "{stderr}");
}

#[test]
fn unreachable_teacher_and_bad_repositories_fail_fast_with_hints() {
    let dir = tempfile::tempdir().expect("tempdir");
    let repo = sample_git_repo(dir.path());
    // `run` against a closed port, on `repo`, with or without a task.
    let run = |repo: &Path, task: bool| {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_trajforge"));
        cmd.args(["run", "--repo"]).arg(repo);
        if task {
            cmd.args(["--task", "x"]);
        }
        cmd.args(["--teacher", "http://127.0.0.1:9/v1", "--model", "m"]);
        let out = cmd.output().expect("runs");
        (
            out.status.code(),
            String::from_utf8_lossy(&out.stderr).to_string(),
        )
    };
    let started = std::time::Instant::now();
    let (code, err) = run(&repo, true);
    assert_eq!(code, Some(1));
    assert!(
        err.contains("cannot reach the teacher") && err.contains("hint:"),
        "{err}"
    );
    assert!(started.elapsed().as_secs() < 20);

    let plain = dir.path().join("plain");
    std::fs::create_dir_all(&plain).expect("mkdir");
    let (code, err) = run(&plain, true);
    assert_eq!(code, Some(2));
    assert!(err.contains("git init"), "{err}");

    let (code, err) = run(&repo.join("more_itertools"), true);
    assert_eq!(code, Some(2));
    assert!(err.contains("not its top level"), "{err}");

    let (code, _) = run(&repo, false);
    assert_eq!(code, Some(2), "a task is required");
}

/// A scripted episode that creates `file`, waits while the other run prepares, and submits.
fn slow_episode(file: &str) -> Script {
    Script::sequence(vec![
        Step::tool_call(
            "str_replace_editor",
            json!({"command": "create", "path": format!("/workspace/{file}"), "file_text": format!("{file}\n")}),
        ),
        Step::tool_call(
            "bash",
            json!({"command": "sleep 3; git log --format=%s -1"}),
        ),
        Step::tool_call("submit", json!({})),
        Step::tool_call("submit", json!({})),
    ])
}

async fn two_runs_on_one_repository_at_other_commits_keep_both_patches(sandbox: Sandbox) {
    let (dir, repo, work, _) = episode_scene();
    run_ok(
        Command::new("git")
            .args(["-c", "user.name=t", "-c", "user.email=t@example.invalid"])
            .args(["commit", "-q", "--allow-empty", "-m", "second"])
            .current_dir(&repo),
        "git commit",
    );
    let (first_server, second_server) = (
        FakeServer::start(slow_episode("first.txt")).await,
        FakeServer::start(slow_episode("second.txt")).await,
    );
    let args = |server: &FakeServer, commit: &str, out: &str| {
        let mut args = run_args(server, &repo, &work, &dir.path().join(out), &sandbox);
        args.extend(["--commit".to_string(), commit.to_string()]);
        args
    };
    let first = trajforge_async(args(&first_server, "HEAD~1", "first.json"), vec![]);
    let second = async {
        // The second run prepares its snapshot while the first is mid-episode.
        tokio::time::sleep(std::time::Duration::from_millis(1500)).await;
        trajforge_async(args(&second_server, "HEAD", "second.json"), vec![]).await
    };
    let (first, second) = tokio::join!(first, second);
    for (output, file, subject) in [
        (first, "first.txt", "base"),
        (second, "second.txt", "second"),
    ] {
        let stderr = String::from_utf8_lossy(&output.stderr);
        let stdout = String::from_utf8_lossy(&output.stdout);
        assert_eq!(output.status.code(), Some(0), "{stderr}");
        assert!(
            stdout.contains(&format!("+++ b/{file}")) && stdout.contains(&format!("+{file}")),
            "{stdout}"
        );
        let other = if file == "first.txt" {
            "second.txt"
        } else {
            "first.txt"
        };
        assert!(!stdout.contains(other), "{stdout}");
        let traj: serde_json::Value = serde_json::from_str(
            &std::fs::read_to_string(dir.path().join(file.replace(".txt", ".json")))
                .expect("trajectory"),
        )
        .expect("json");
        assert_eq!(traj["exit"]["status"], "submitted");
        let log = traj["steps"][1]["tools"][0]["observation"]["text"]
            .as_str()
            .expect("text");
        assert!(log.starts_with(subject), "{log}");
    }
}

async fn observations_reach_the_terminal_escaped_and_a_repeating_episode_ends_stuck(
    sandbox: Sandbox,
) {
    let (_dir, repo, work, out) = episode_scene();
    let noisy = || {
        Step::tool_call(
            "bash",
            json!({"command": "printf '\\033]0;pwned\\007\\033[2J\\000done'; false"}),
        )
    };
    let server = FakeServer::start(Script::sequence((0..6).map(|_| noisy()).collect())).await;
    let mut args = run_args(&server, &repo, &work, &out, &sandbox);
    args.extend(["--max-repeats".to_string(), "3".to_string()]);
    let output = trajforge_async(args, vec![]).await;
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        !stderr.contains('\x1b') && !stderr.contains('\0') && !stderr.contains('\x07'),
        "{stderr:?}"
    );
    assert!(
        stderr.contains("\\x1b]0;pwned\\x07\\x1b[2J\\x00done"),
        "{stderr}"
    );
    // The same failing call three times in a row: stuck, not the step limit.
    assert!(stderr.contains("stuck after 3 steps"), "{stderr}");
    assert_eq!(output.status.code(), Some(3), "{stderr}");
    assert_eq!(server.chat_request_count(), 3);
    let traj: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&out).expect("trajectory")).expect("json");
    assert_eq!(traj["exit"]["status"], "stuck");
    // The trajectory keeps the bytes as they were.
    let text = traj["steps"][0]["tools"][0]["observation"]["text"]
        .as_str()
        .expect("text");
    assert!(text.contains("\x1b]0;pwned\x07"), "{text:?}");
}

/// The repository's own test suite runs in the sandbox, and a command past its time limit is
/// interrupted without losing the shell (its directory and variables hold).
async fn the_projects_tests_run_and_a_hung_command_is_interrupted(sandbox: Sandbox) {
    let (_dir, repo, work, out) = episode_scene();
    let script = Script::sequence(vec![
        Step::tool_call(
            "bash",
            json!({"command": "cd /workspace && python3 -m unittest tests.test_recipes.TakeTests 2>&1 | tail -n 3"}),
        ),
        Step::tool_call(
            "bash",
            json!({"command": "cd more_itertools; X=kept; sleep 60 & sleep 60; echo never"}),
        ),
        Step::tool_call("bash", json!({"command": "pwd; echo \"x=$X\""})),
        Step::tool_call("submit", json!({})),
        Step::tool_call("submit", json!({})),
    ]);
    let server = FakeServer::start(script).await;
    let mut args = run_args(&server, &repo, &work, &out, &sandbox);
    args.extend(["--command-timeout", "4"].map(String::from));
    let output = trajforge_async(args, vec![]).await;
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(0), "{stderr}");
    let traj: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&out).expect("trajectory")).expect("json");
    let obs = |i: usize| {
        traj["steps"][i]["tools"][0]["observation"]["text"]
            .as_str()
            .expect("text")
            .to_string()
    };
    assert!(
        obs(0).contains("\nOK") && obs(0).contains("Ran "),
        "{}",
        obs(0)
    );
    assert!(
        obs(1).contains("timed out after 4 s") && !obs(1).contains("never"),
        "{}",
        obs(1)
    );
    assert!(!obs(1).contains("shell was restarted"), "{}", obs(1));
    assert!(
        obs(2).contains("/workspace/more_itertools") && obs(2).contains("x=kept"),
        "{}",
        obs(2)
    );
    assert_eq!(traj["exit"]["status"], "submitted");
}
