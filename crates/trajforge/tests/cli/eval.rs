//! `trajforge eval` end to end on real history: more-itertools' full history (a git bundle),
//! two hand-picked first-parent merges that fix a bug and add a test, the real sandbox and
//! `python3 -m unittest -v`, and scripted teachers: one applies the gold patch, one submits
//! nothing, one edits the test file so the new test passes.
//!
//! The bundle is `$TRAJFORGE_TEST_DATA/more-itertools.bundle`, else
//! `shared/data/more-itertools.bundle` in a folder above the workspace (the shared data of a
//! development machine). Outside CI a missing bundle skips these tests with a note.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::Arc;
use std::time::Duration;

use serde_json::{Value, json};
use trajforge_eval::{Prediction, Task, TaskKind, TaskResult, read_jsonl, write_jsonl};
use trajforge_testkit::history::{FIXES, fix_tasks};
use trajforge_testkit::{FakeServer, Script, Step, first_user_text};

use crate::run::work_dir;
use crate::{
    assert_success, kill_once_stored, more_itertools_clone, repo_root, status_json, taught,
};

pub(crate) struct Scene {
    pub dir: tempfile::TempDir,
    pub repo: PathBuf,
    pub work: PathBuf,
    pub tasks: Vec<Task>,
}

/// The repository cloned from the bundle, and the tasks of two [`FIXES`] built from its history.
pub(crate) fn scene() -> Option<Scene> {
    let dir = tempfile::tempdir().expect("tempdir");
    let repo = more_itertools_clone(dir.path());
    let work = work_dir(dir.path());
    // The first two fixes: a bug in `sliced` and one in `interleave_evenly`.
    let tasks = fix_tasks(&repo, &FIXES[..2]).expect("tasks from the history");
    Some(Scene {
        dir,
        repo,
        work,
        tasks,
    })
}

impl Scene {
    pub(crate) fn write_tasks(&self, name: &str, tasks: &[Task]) -> PathBuf {
        let path = self.dir.path().join(name);
        write_jsonl(&path, tasks).expect("tasks file");
        path
    }

    pub(crate) fn eval_cmd(
        &self,
        server: &FakeServer,
        tasks: &Path,
        out: &Path,
        extra: &[&str],
    ) -> Command {
        let mut cmd = taught(&["eval"], &server.url());
        cmd.arg("--repo")
            .arg(&self.repo)
            .arg("--tasks")
            .arg(tasks)
            .arg("--out")
            .arg(out)
            .arg("--work-dir")
            .arg(&self.work)
            .args(["--backoff", "0.01", "--concurrency", "2"])
            .args(extra);
        cmd
    }
}

/// What the scripted agent does with a task.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) enum Agent {
    /// Applies the gold patch, then submits.
    Gold,
    /// Submits at once, changing nothing.
    Nothing,
    /// Stubs the failing test at the end of the test file so it passes, then submits.
    EditsTests,
}

/// A teacher playing `agent` on `tasks`, recognising each task by its problem statement.
pub(crate) async fn teacher(agent: Agent, tasks: &[Task], delay: Duration) -> FakeServer {
    teacher_with(agent, tasks, move |step| step.after(delay)).await
}

/// [`teacher`] with `finish` applied to each reply (a delay, fixed token usage).
pub(crate) async fn teacher_with(
    agent: Agent,
    tasks: &[Task],
    finish: impl Fn(Step) -> Step + Send + Sync + 'static,
) -> FakeServer {
    let tasks = Arc::new(tasks.to_vec());
    FakeServer::start(Script::handler(move |req: &Value| {
        let messages = req["messages"].as_array().cloned().unwrap_or_default();
        let first_user = first_user_text(req);
        let task = tasks
            .iter()
            .find(|t| first_user.contains(&t.problem_statement))
            .expect("the task's problem statement is in the prompt");
        let turn = messages.iter().filter(|m| m["role"] == "assistant").count();
        let command = match agent {
            Agent::Gold => Some(format!(
                "cd /workspace && git apply <<'TRAJFORGE_GOLD'\n{}TRAJFORGE_GOLD\ngit diff --stat",
                task.patch
            )),
            Agent::Nothing => None,
            Agent::EditsTests => {
                let (class, test) = task.fail_to_pass[0]
                    .trim_start_matches("tests.test_more.")
                    .split_once('.')
                    .expect("Class.test");
                Some(format!(
                    "cd /workspace && printf '\\n{class}.{test} = lambda self: None\\n' >> tests/test_more.py"
                ))
            }
        };
        let step = match (command, turn) {
            (Some(c), 0) => Step::tool_call("bash", json!({"command": c})),
            (_, t) if t < 4 => Step::tool_call("submit", json!({})),
            _ => Step::text("done"),
        };
        finish(step)
    }))
    .await
}

async fn output(mut cmd: Command) -> Output {
    tokio::task::spawn_blocking(move || cmd.output().expect("trajforge runs"))
        .await
        .expect("join")
}

pub(crate) fn rows(dir: &Path) -> Vec<TaskResult> {
    read_jsonl(&dir.join("results.jsonl")).expect("results.jsonl")
}

/// `eval` of `tasks_file` into the folder `name` against an instant teacher playing `agent`;
/// the folder and its result rows, once the command succeeded.
async fn evaluate(
    scene: &Scene,
    agent: Agent,
    tasks_file: &Path,
    name: &str,
) -> (PathBuf, Vec<TaskResult>) {
    let server = teacher(agent, &scene.tasks, Duration::ZERO).await;
    let out_dir = scene.dir.path().join(name);
    let out = output(scene.eval_cmd(&server, tasks_file, &out_dir, &[])).await;
    assert_success(&out);
    let results = rows(&out_dir);
    (out_dir, results)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_gold_patch_resolves_every_hard_task_on_every_seed_and_survives_kill_9() {
    let Some(scene) = scene() else { return };
    let tasks_file = scene.write_tasks("tasks.jsonl", &scene.tasks);
    let server = teacher(Agent::Gold, &scene.tasks, Duration::from_millis(300)).await;
    let out_dir = scene.dir.path().join("eval-gold");

    // Killed as soon as the first episode is stored, then resumed to the end.
    let mut child = scene
        .eval_cmd(&server, &tasks_file, &out_dir, &["--seeds", "2"])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .expect("spawn");
    kill_once_stored(&mut child, &out_dir).await;
    let out = output(scene.eval_cmd(
        &server,
        &tasks_file,
        &out_dir,
        &["--seeds", "2", "--price-in", "1", "--price-out", "2"],
    ))
    .await;
    let stderr = String::from_utf8_lossy(&out.stderr).to_string();
    assert!(out.status.success(), "{stderr}");
    assert!(stderr.contains("2 tasks x 2 seeds = 4 rows"), "{stderr}");
    assert!(
        stderr.contains("resolved 4 of 4 hard rows (100.0%); mean line recall 1.000"),
        "{stderr}"
    );

    let results = rows(&out_dir);
    let keys: Vec<(String, u32)> = results
        .iter()
        .map(|r| (r.instance_id.clone(), r.seed))
        .collect();
    assert_eq!(
        keys,
        [
            ("more-itertools-b363d6b".to_string(), 0),
            ("more-itertools-b363d6b".to_string(), 1),
            ("more-itertools-c2859de".to_string(), 0),
            ("more-itertools-c2859de".to_string(), 1),
        ],
        "one row per task and seed, none twice after the resume"
    );
    for r in &results {
        assert_eq!(r.resolved, Some(true), "{r:?}");
        assert_eq!(r.recall, 1.0, "{r:?}");
        assert_eq!(r.exit_status, "submitted");
        assert_eq!(r.model, "fake-model");
        assert!(r.steps >= 2 && r.prompt_tokens > 0, "{r:?}");
        assert!(r.cost_usd.is_some_and(|c| c > 0.0), "{r:?}");
        assert_eq!(r.error, None);
    }
    for (file, seed) in [("predictions.jsonl", 0), ("predictions-seed1.jsonl", 1)] {
        let preds: Vec<Prediction> = read_jsonl(&out_dir.join(file)).expect(file);
        assert_eq!(preds.len(), 2, "{file}");
        for p in preds {
            let task = scene
                .tasks
                .iter()
                .find(|t| t.instance_id == p.instance_id)
                .expect("a task's prediction");
            assert_eq!(p.model_name_or_path, "fake-model");
            let r = trajforge_patch::line_recall_str(&task.patch, &p.model_patch).expect("patch");
            assert_eq!(r.recall, Some(1.0), "seed {seed}: {}", p.model_patch);
        }
    }

    let status = status_json(&out_dir, &[]);
    assert_eq!(status["kind"], "eval");
    let eval = &status["eval"];
    assert_eq!(eval["rows"], 4);
    assert_eq!(eval["tasks"], 2);
    assert_eq!(eval["resolved_rate"], 1.0);
    assert_eq!(eval["mean_recall"], 1.0);
    assert_eq!(eval["exits"]["submitted"], 4);
    assert_eq!(eval["by_seed"]["1"]["resolved"], 2);
    assert_eq!(status["results"]["resolved"], 4);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_agent_that_submits_nothing_resolves_nothing() {
    let Some(scene) = scene() else { return };
    let tasks_file = scene.write_tasks("tasks.jsonl", &scene.tasks);
    let (out_dir, results) = evaluate(&scene, Agent::Nothing, &tasks_file, "eval-nothing").await;
    assert_eq!(results.len(), 2);
    for r in &results {
        assert_eq!(
            (r.resolved, r.recall, r.exit_status.as_str()),
            (Some(false), 0.0, "submitted"),
            "{r:?}"
        );
    }
    let preds: Vec<Prediction> = read_jsonl(&out_dir.join("predictions.jsonl")).expect("preds");
    assert!(preds.iter().all(|p| p.model_patch.is_empty()), "{preds:?}");
    assert!(!out_dir.join("predictions-seed1.jsonl").exists());
    let status = status_json(&out_dir, &[]);
    assert_eq!(status["eval"]["resolved_rate"], 0.0);
    assert_eq!(status["eval"]["mean_recall"], 0.0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_agent_that_edits_the_tests_to_pass_them_does_not_pass() {
    let Some(scene) = scene() else { return };
    let tasks_file = scene.write_tasks("tasks.jsonl", &scene.tasks);
    let (out_dir, results) = evaluate(&scene, Agent::EditsTests, &tasks_file, "eval-cheat").await;
    assert_eq!(results.len(), 2);
    let preds: Vec<Prediction> = read_jsonl(&out_dir.join("predictions.jsonl")).expect("preds");
    for p in &preds {
        // The edit is real: the stub is in the agent's patch.
        assert!(
            p.model_patch.contains("+++ b/tests/test_more.py")
                && p.model_patch.contains("= lambda self: None"),
            "{}",
            p.model_patch
        );
    }
    for r in &results {
        assert_eq!(
            (r.resolved, r.error.as_deref()),
            (Some(false), None),
            "{r:?}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn swe_bench_instances_without_a_test_command_are_scored_by_recall() {
    let Some(scene) = scene() else { return };
    // As SWE-bench's datasets write them: test lists as JSON strings, their own fields, no
    // trajforge fields.
    let lines: Vec<Value> = scene
        .tasks
        .iter()
        .map(|t| {
            json!({
                "instance_id": t.instance_id, "repo": t.repo, "base_commit": t.base_commit,
                "patch": t.patch, "test_patch": t.test_patch,
                "problem_statement": t.problem_statement,
                "FAIL_TO_PASS": serde_json::to_string(&t.fail_to_pass).expect("json"),
                "PASS_TO_PASS": "[]", "created_at": "2026-07-08T16:42:39Z",
                "version": "11.0", "hints_text": ""
            })
        })
        .collect();
    let tasks_file = scene.dir.path().join("swe-bench.jsonl");
    std::fs::write(
        &tasks_file,
        lines.iter().map(|l| format!("{l}\n")).collect::<String>(),
    )
    .expect("write");
    let (out_dir, results) = evaluate(&scene, Agent::Gold, &tasks_file, "eval-swe").await;
    assert_eq!(results.len(), 2);
    for r in &results {
        assert_eq!(r.kind, TaskKind::Hard);
        assert_eq!((r.resolved, r.recall), (None, 1.0), "{r:?}");
    }
    let status = status_json(&out_dir, &[]);
    assert_eq!(status["eval"]["hard_rows"], 0);
    assert_eq!(status["eval"]["resolved_rate"], Value::Null);
    assert_eq!(status["results"]["recall_only"], 2);
}

/// `eval` of `tasks` on this workspace into `out`, with a teacher that never answers: for
/// the refusals that come before any teacher call.
fn eval_without_teacher(tasks: &Path, out: &Path, cache: &Path) -> Output {
    crate::trajforge(
        &[
            "eval",
            "--repo",
            &repo_root().display().to_string(),
            "--tasks",
            &tasks.display().to_string(),
            "--teacher",
            "http://127.0.0.1:9/v1",
            "--model",
            "m",
            "--out",
            &out.display().to_string(),
        ],
        cache,
    )
}

#[test]
fn a_task_file_with_a_bad_line_is_refused_with_its_line_number() {
    let dir = tempfile::tempdir().expect("tempdir");
    let tasks = dir.path().join("tasks.jsonl");
    std::fs::write(&tasks, "\n{\"instance_id\": 1}\n").expect("write");
    let out = eval_without_teacher(&tasks, &dir.path().join("e"), dir.path());
    assert_eq!(out.status.code(), Some(2), "{}", crate::stderr(&out));
    let err = crate::stderr(&out);
    assert!(err.contains("tasks.jsonl:2:"), "{err}");
    assert!(!dir.path().join("e").exists(), "nothing is created");
}

#[test]
fn an_eval_folder_with_the_users_own_rows_is_refused_and_left_alone() {
    let dir = tempfile::tempdir().expect("tempdir");
    let tasks = dir.path().join("tasks.jsonl");
    std::fs::write(
        &tasks,
        "{\"instance_id\":\"x-1\",\"repo\":\"x\",\"base_commit\":\"HEAD\",\"patch\":\"\",\"problem_statement\":\"s\"}\n",
    )
    .expect("write tasks");
    for (file, text) in [
        ("results.jsonl", "{\"mine\": 1}\n"),
        ("predictions-final.jsonl", "{\"mine\": 2}\n"),
    ] {
        let out_dir = dir.path().join(format!("mine-{file}"));
        std::fs::create_dir(&out_dir).expect("out dir");
        std::fs::write(out_dir.join(file), text).expect("user file");
        let out = eval_without_teacher(&tasks, &out_dir, dir.path());
        let err = crate::input_error(&out);
        assert!(
            err.contains(file) && err.contains("would be overwritten"),
            "{err}"
        );
        assert!(err.contains("give --out a new folder"), "{err}");
        assert_eq!(
            std::fs::read_to_string(out_dir.join(file)).expect("still there"),
            text
        );
        assert!(!out_dir.join("trajforge.db").exists(), "no store created");
    }
}

/// `--sandbox podman`: the agent's commands and the hard task's test runs happen in
/// containers of the test image, and the gold patch resolves the task there too. One task,
/// one seed, to keep the container starts few; a resume in bubblewrap is refused. (Skipped
/// where podman is absent, unless CI.)
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn podman_the_gold_patch_resolves_a_hard_task_in_containers() {
    let Some(image) = trajforge_testkit::podman_image() else {
        return;
    };
    let Some(scene) = scene() else { return };
    let tasks = &scene.tasks[..1];
    let tasks_file = scene.write_tasks("one.jsonl", tasks);
    let server = teacher(Agent::Gold, tasks, Duration::ZERO).await;
    let out_dir = scene.dir.path().join("eval-podman");
    let sandbox = ["--sandbox", "podman", "--image", image.as_str()];
    let out = output(scene.eval_cmd(&server, &tasks_file, &out_dir, &sandbox)).await;
    assert_success(&out);
    let results = rows(&out_dir);
    assert_eq!(results.len(), 1);
    let r = &results[0];
    assert_eq!(
        (
            r.resolved,
            r.recall,
            r.exit_status.as_str(),
            r.error.as_deref()
        ),
        (Some(true), 1.0, "submitted", None),
        "{r:?}"
    );
    crate::run::assert_engine_folder(&scene.work, "podman");
    // Resumed in bubblewrap, its rows would mix two sandboxes: refused.
    let out = output(scene.eval_cmd(&server, &tasks_file, &out_dir, &[])).await;
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(
        stderr.contains(&format!("sandbox: podman image {image} → bubblewrap")),
        "{stderr}"
    );
}
