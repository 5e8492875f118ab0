//! The repository environment over a real sandbox session: the three tools, driven through
//! the agent's `Environment` interface, and the patch it hands back, in each sandbox backend:
//! bubblewrap (needed) and a podman container of the locally built test image.

use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::process::Command;
use std::time::Duration;

use serde_json::json;
use trajforge_agent::{Environment, Observation};
use trajforge_repo_env::RepoEnvironment;
use trajforge_repo_env::repo::{BASH, EDITOR, SUBMIT};
use trajforge_sandbox::{Backend, Engine, EnvironmentOptions};
use trajforge_teacher::ToolCall;

/// A committed one-file repository under a folder the sandbox uid can traverse.
fn one_file_repo(root: &Path) -> std::path::PathBuf {
    let repo = root.join("repo");
    fs::create_dir_all(&repo).expect("mkdir");
    fs::write(repo.join("lib.py"), "def f():\n    return 1\n").expect("write");
    for args in [
        &["init", "-q"][..],
        &["add", "-A"],
        &["commit", "-q", "-m", "base"],
    ] {
        let ok = Command::new("git")
            .arg("-C")
            .arg(&repo)
            .args(["-c", "user.name=t", "-c", "user.email=t@t"])
            .args(args)
            .status()
            .expect("git")
            .success();
        assert!(ok, "git {args:?}");
    }
    repo
}

async fn call(env: &mut RepoEnvironment, tool: &str, args: serde_json::Value) -> Observation {
    let call = ToolCall {
        id: "c".into(),
        name: tool.into(),
        arguments: args.to_string(),
        parse_error: None,
    };
    env.call(&call).await
}

#[tokio::test(flavor = "multi_thread")]
async fn bash_editor_and_submit_work_in_the_sandbox_and_the_patch_comes_back() {
    assert!(
        ["/usr/bin/bwrap", "/usr/local/bin/bwrap"]
            .iter()
            .any(|p| Path::new(p).is_file()),
        "bubblewrap not installed: run scripts/setup.sh"
    );
    tools_and_patch(Backend::Bubblewrap).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn bash_editor_and_submit_work_in_a_podman_container_and_the_patch_comes_back() {
    if let Some(image) = trajforge_testkit::podman_image() {
        let engine = Engine::Podman;
        tools_and_patch(Backend::Container { engine, image }).await;
    }
}

/// The three tools and the patch through `backend`.
async fn tools_and_patch(backend: Backend) {
    let tmp = tempfile::Builder::new()
        .prefix("tf-repo-env-test")
        .tempdir()
        .expect("tempdir");
    fs::set_permissions(tmp.path(), fs::Permissions::from_mode(0o755)).expect("chmod");
    let repo = one_file_repo(tmp.path());
    let mut options = EnvironmentOptions::new(tmp.path().join("env"));
    options.commit = Some("HEAD".into());
    options.sandbox.backend = backend;
    let prepared = trajforge_sandbox::Environment::prepare(&repo, None, &options).expect("prepare");
    let session = prepared
        .create_workspace()
        .expect("workspace")
        .session()
        .expect("session");
    let mut env = RepoEnvironment::new(session, "/workspace", Some(Duration::from_secs(20)));

    // The first observation holds the command's output and nothing the sandbox's start said,
    // and a shell the command starts says nothing of its locale. The podman test image has no
    // C.UTF-8 locale, where a bash under LC_ALL=C.UTF-8 warns on every start.
    let obs = call(
        &mut env,
        BASH,
        json!({"command": "bash -c 'echo \"started in $LC_ALL\"'"}),
    )
    .await;
    assert!(
        ["started in C.UTF-8", "started in C"].contains(&obs.text.trim_end()),
        "{:?}",
        obs.text
    );

    let obs = call(
        &mut env,
        BASH,
        json!({"command": "cd /workspace && ls; exit 3"}),
    )
    .await;
    assert!(
        obs.text.contains("lib.py") && obs.text.contains("[exit code 3]"),
        "{}",
        obs.text
    );
    assert_eq!(obs.exit_code, Some(3));

    let obs = call(
        &mut env,
        EDITOR,
        json!({"command": "str_replace", "path": "lib.py", "old_str": "return 1", "new_str": "return 20"}),
    )
    .await;
    assert!(!obs.error, "{}", obs.text);
    // A file in a folder that does not exist yet: the editor creates the folder first.
    let obs = call(
        &mut env,
        EDITOR,
        json!({"command": "create", "path": "/workspace/pkg/new.py", "file_text": "x = 1\n"}),
    )
    .await;
    assert!(!obs.error, "{}", obs.text);
    let obs = call(
        &mut env,
        EDITOR,
        json!({"command": "view", "path": "/workspace"}),
    )
    .await;
    assert!(obs.text.contains("/workspace/pkg/new.py"), "{}", obs.text);
    let obs = call(
        &mut env,
        EDITOR,
        json!({"command": "view", "path": "nothing.py"}),
    )
    .await;
    assert!(
        obs.error && obs.text.contains("does not exist"),
        "{}",
        obs.text
    );

    let first = call(&mut env, SUBMIT, json!({})).await;
    assert!(
        !first.done && first.text.contains("return 20"),
        "{}",
        first.text
    );
    let second = call(&mut env, SUBMIT, json!({})).await;
    assert!(second.done);

    let outcome = env.finish().await;
    assert_eq!(outcome.error, None);
    let patch = outcome.patch.expect("patch");
    assert!(
        patch.contains("+    return 20") && patch.contains("pkg/new.py"),
        "{patch}"
    );
}
