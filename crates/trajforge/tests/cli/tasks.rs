//! `trajforge tasks mine` end to end on real history: a clone of more-itertools' git bundle,
//! its own tests run in the sandbox with `python3 -m unittest -v`, and a scripted teacher for
//! the statements.
//!
//! The bundle is `examples/more-itertools.bundle` (committed).

use std::path::Path;
use std::process::{Command, Output};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use serde_json::Value;
use trajforge_testkit::{FakeServer, Script, Step};

use crate::run::work_dir;
use crate::{assert_success, jsonl, more_itertools_clone, stderr};

/// The split point and end of a window of seven first-parent commits (June 2026) holding two
/// changes with real FAIL_TO_PASS tests, checked by hand: `ed86a15` makes `tail` reject a
/// negative size (its test for sized iterables fails before), `b363d6b` makes
/// `interleave_evenly` accept no iterables.
pub(crate) const AFTER: &str = "49c991e";
const UNTIL: &str = "ed86a15";
/// Only the test classes the window's changes touch, so the four runs per change take
/// seconds instead of the full suite's minute.
const TEST_CMD: &str = "python3 -m unittest -v -k TailTests -k InterleaveEvenly";

pub(crate) fn mine(repo: &Path, work: &Path, out: &Path, extra: &[&str]) -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_trajforge"));
    cmd.args(["tasks", "mine", "--repo"])
        .arg(repo)
        .args(["--after", AFTER, "--until", UNTIL, "--out"])
        .arg(out)
        .arg("--work-dir")
        .arg(work)
        .args(extra);
    cmd
}

pub(crate) fn run(mut cmd: Command) -> Output {
    cmd.output().expect("trajforge runs")
}

fn by_id<'a>(tasks: &'a [Value], id: &str) -> &'a Value {
    tasks
        .iter()
        .find(|t| t["instance_id"] == id)
        .unwrap_or_else(|| panic!("no task {id} in {tasks:#?}"))
}

fn strings(v: &Value) -> Vec<&str> {
    v.as_array()
        .expect("a list")
        .iter()
        .map(|s| s.as_str().expect("a string"))
        .collect()
}

#[test]
fn mines_hard_tasks_with_the_real_fail_to_pass_tests_of_more_itertools() {
    let dir = tempfile::tempdir().expect("tempdir");
    let repo = more_itertools_clone(dir.path());
    let work = work_dir(dir.path());
    let out = dir.path().join("tasks.jsonl");
    let o = run(mine(
        &repo,
        &work,
        &out,
        &["--statement", "commit", "--test-cmd", TEST_CMD],
    ));
    assert_success(&o);
    let err = stderr(&o);
    assert!(
        err.contains("screened 7 first-parent commits: 6 changes to mine"),
        "{err}"
    );
    assert!(err.contains("skipped only_packaging 1"), "{err}");
    assert!(
        err.contains("2 hard, 4 soft (soft because: no_test_patch 4)"),
        "{err}"
    );
    let tasks = jsonl(&out);
    assert_eq!(tasks.len(), 6);
    // Oldest change first, every SWE-bench field present.
    let dates: Vec<&str> = tasks
        .iter()
        .map(|t| t["created_at"].as_str().expect("date"))
        .collect();
    assert!(dates.windows(2).all(|w| w[0] <= w[1]), "{dates:?}");
    for t in &tasks {
        for key in [
            "instance_id",
            "repo",
            "base_commit",
            "patch",
            "test_patch",
            "problem_statement",
            "FAIL_TO_PASS",
            "PASS_TO_PASS",
            "created_at",
            "kind",
            "commit",
        ] {
            assert!(t.get(key).is_some(), "{key} missing in {t}");
        }
        assert_eq!(t["repo"], "more-itertools");
    }

    let tail = by_id(&tasks, "more-itertools-ed86a1528aa0");
    assert_eq!(tail["kind"], "hard");
    assert_eq!(
        tail["base_commit"],
        "fe24c338d8c3264a82cdc2bed49fb156cfd11a86"
    );
    assert_eq!(
        strings(&tail["FAIL_TO_PASS"]),
        ["tests.test_recipes.TailTests.test_sized_negative"]
    );
    // Added by the test patch but already passing at the base: PASS_TO_PASS, not FAIL_TO_PASS.
    let p2p = strings(&tail["PASS_TO_PASS"]);
    assert!(
        p2p.contains(&"tests.test_recipes.TailTests.test_iterator_negative"),
        "{p2p:?}"
    );
    assert!(
        p2p.contains(&"tests.test_recipes.TailTests.test_sized_greater"),
        "{p2p:?}"
    );
    let patch = tail["patch"].as_str().expect("patch");
    assert!(
        patch.starts_with("diff --git a/more_itertools/recipes.py b/more_itertools/recipes.py\n"),
        "{patch}"
    );
    assert!(
        patch.contains("+        raise ValueError('n must be at least 0')\n"),
        "{patch}"
    );
    assert!(!patch.contains("tests/"), "{patch}");
    let test_patch = tail["test_patch"].as_str().expect("test patch");
    assert!(
        test_patch.starts_with("diff --git a/tests/test_recipes.py b/tests/test_recipes.py\n"),
        "{test_patch}"
    );
    assert!(
        !test_patch.contains("more_itertools/recipes.py"),
        "{test_patch}"
    );
    // A merge whose message is only "Merge branch ...": the merged commits' messages.
    let statement = tail["problem_statement"].as_str().expect("statement");
    assert!(
        statement.starts_with("Raise for negative tail sizes on sized iterables"),
        "{statement}"
    );
    assert_eq!(tail["test_cmd"], TEST_CMD);

    let interleave = by_id(&tasks, "more-itertools-b363d6b82c70");
    assert_eq!(interleave["kind"], "hard");
    assert_eq!(
        strings(&interleave["FAIL_TO_PASS"]),
        ["tests.test_more.InterleaveEvenlyTests.test_no_iterables"]
    );
    // A typing-stub change with no tests is a soft task with nothing to run.
    let stub = by_id(&tasks, "more-itertools-fe24c338d8c3");
    assert_eq!(stub["kind"], "soft");
    assert_eq!(stub["test_patch"], "");
    assert!(strings(&stub["FAIL_TO_PASS"]).is_empty());
    assert_eq!(stub["problem_statement"], "Improve types for difference");

    // The run's folder reads with `status`, and the same command again resumes: nothing to
    // redo, and its own tasks file may be rewritten.
    let store = dir.path().join("tasks.run");
    let status = crate::trajforge(&["status", store.to_str().expect("utf-8")], dir.path());
    assert_success(&status);
    let report = crate::stdout(&status);
    assert!(report.starts_with("changes: 6 (6 done"), "{report}");
    assert!(!report.contains("functions"), "{report}");
    let again = run(mine(
        &repo,
        &work,
        &out,
        &["--statement", "commit", "--test-cmd", TEST_CMD],
    ));
    assert_success(&again);
    assert!(
        stderr(&again).contains("(0 new), 6 already done"),
        "{}",
        stderr(&again)
    );
    assert_eq!(jsonl(&out), tasks);
    // Snapshots of base commits are removed once validated.
    let left: Vec<_> = std::fs::read_dir(&work)
        .expect("work")
        .flatten()
        .map(|e| e.file_name())
        .collect();
    assert!(left.is_empty(), "{left:?}");
}

#[test]
fn an_existing_file_is_never_replaced_and_other_settings_are_refused_on_resume() {
    let dir = tempfile::tempdir().expect("tempdir");
    let repo = more_itertools_clone(dir.path());
    let work = work_dir(dir.path());
    let out = dir.path().join("mine.jsonl");
    std::fs::write(&out, "my own notes\n").expect("write");
    let o = run(mine(&repo, &work, &out, &["--statement", "commit"]));
    assert_eq!(o.status.code(), Some(2), "{}", stderr(&o));
    assert!(
        stderr(&o).contains("exists and was not written by this mining run"),
        "{}",
        stderr(&o)
    );
    assert!(
        stderr(&o).contains("hint: trajforge never replaces a file it did not write"),
        "{}",
        stderr(&o)
    );
    assert_eq!(
        std::fs::read_to_string(&out).expect("read"),
        "my own notes\n"
    );
    assert!(!dir.path().join("mine.run").exists());

    let out = dir.path().join("tasks.jsonl");
    assert_success(&run(mine(&repo, &work, &out, &["--statement", "commit"])));
    assert_eq!(jsonl(&out).len(), 6);
    // Edited by the user since: no longer ours.
    std::fs::write(&out, "edited\n").expect("write");
    let o = run(mine(&repo, &work, &out, &["--statement", "commit"]));
    assert_eq!(o.status.code(), Some(2), "{}", stderr(&o));
    std::fs::remove_file(&out).expect("rm");
    let o = run(mine(
        &repo,
        &work,
        &out,
        &["--statement", "commit", "--max-lines", "5"],
    ));
    assert_eq!(o.status.code(), Some(2), "{}", stderr(&o));
    assert!(stderr(&o).contains("limits"), "{}", stderr(&o));

    let o = run(mine(&repo, &work, &dir.path().join("x.jsonl"), &[]));
    assert_eq!(o.status.code(), Some(2), "{}", stderr(&o));
    assert!(stderr(&o).contains("--statement commit"), "{}", stderr(&o));
    let o = run(mine(
        &repo,
        &work,
        &dir.path().join("y.jsonl"),
        &["--statement", "commit", "--after", "no-such-rev"],
    ));
    assert_eq!(o.status.code(), Some(2), "{}", stderr(&o));
}

/// The first added line of the `<change>` block that is long enough to count as a leak.
fn telling_line(prompt: &str) -> Option<String> {
    let change = prompt.split("<change>").nth(1)?.split("</change>").next()?;
    change
        .lines()
        .filter_map(|l| l.strip_prefix('+'))
        .filter(|l| !l.starts_with("++"))
        .map(str::trim)
        .find(|l| l.len() >= 20)
        .map(String::from)
}

#[tokio::test(flavor = "multi_thread")]
async fn the_teacher_writes_the_statements_and_one_quoting_the_fix_is_asked_again() {
    let dir = tempfile::tempdir().expect("tempdir");
    let repo = more_itertools_clone(dir.path());
    let work = work_dir(dir.path());
    let out = dir.path().join("tasks.jsonl");
    let calls = Arc::new(AtomicUsize::new(0));
    let seen = Arc::clone(&calls);
    // Every first try quotes an added line of the gold patch; the second describes the symptom.
    let server = FakeServer::start(Script::handler(move |req| {
        let n = seen.fetch_add(1, Ordering::SeqCst);
        let prompt = req["messages"][1]["content"].as_str().unwrap_or_default();
        let quoted = telling_line(prompt).unwrap_or_default();
        if n.is_multiple_of(2) {
            Step::text(format!(
                "<issue>It breaks. The fix is:\n\n    {quoted}\n</issue>"
            ))
        } else {
            Step::text(
                "<issue>Calling the function with a negative size gives a wrong result.</issue>",
            )
        }
    }))
    .await;
    let mut cmd = mine(
        &repo,
        &work,
        &out,
        &[
            "--teacher",
            &server.url(),
            "--model",
            "fake-model",
            "--concurrency",
            "1",
        ],
    );
    cmd.args(["--after", "fe24c33"]);
    let o = tokio::task::spawn_blocking(move || cmd.output().expect("runs"))
        .await
        .expect("join");
    assert_success(&o);
    let tasks = jsonl(&out);
    assert_eq!(tasks.len(), 1, "{tasks:#?}");
    assert_eq!(
        tasks[0]["problem_statement"],
        "Calling the function with a negative size gives a wrong result."
    );
    assert_eq!(calls.load(Ordering::SeqCst), 2);
    let prompt = server.requests()[0]["messages"][1]["content"]
        .as_str()
        .expect("prompt")
        .to_string();
    assert!(
        prompt.contains("raise ValueError('n must be at least 0')"),
        "{prompt}"
    );
    assert!(
        prompt.contains("Raise for negative tail sizes"),
        "the commit message is given: {prompt}"
    );
}

/// Jobs done in the run's store.
fn done(store: &Path) -> usize {
    match trajforge_store::Store::open_existing(store) {
        Ok(Some(s)) => s.counts().map_or(0, |c| c.done as usize),
        _ => 0,
    }
}

#[test]
fn a_mining_killed_mid_run_resumes_without_redoing_finished_changes() {
    let dir = tempfile::tempdir().expect("tempdir");
    let repo = more_itertools_clone(dir.path());
    let work = work_dir(dir.path());
    let out = dir.path().join("tasks.jsonl");
    let store = dir.path().join("tasks.run");
    let args = [
        "--statement",
        "commit",
        "--test-cmd",
        TEST_CMD,
        "--concurrency",
        "1",
    ];
    let mut child = mine(&repo, &work, &out, &args).spawn().expect("spawn");
    // Kill once the first two jobs are done: the newest change (a hard task, validated) and a
    // soft one. The third job is the other hard task, whose test runs take seconds, so the
    // kill lands mid-run; the soft jobs after it finish within milliseconds of each other,
    // too fast to kill between.
    crate::kill_when(&mut child, || done(&store) >= 2);
    let before = stage_times(&store);
    assert!(before.len() >= 2, "{before:?}");
    let results: Vec<String> = trajforge_store::Store::open_existing(&store)
        .expect("open")
        .expect("a store")
        .jobs()
        .expect("jobs")
        .into_iter()
        .filter_map(|j| j.result.map(|r| r.as_str().to_string()))
        .collect();
    assert!(
        results.iter().any(|r| r == "hard") && results.len() < 6,
        "a validated hard task is among the jobs done before the kill, not all: {results:?}"
    );
    assert!(!out.exists(), "no tasks file before the end");

    let o = run(mine(&repo, &work, &out, &args));
    assert_success(&o);
    let err = stderr(&o);
    assert!(
        err.contains(&format!("{} already done", before.len())),
        "{err}"
    );
    let after = stage_times(&store);
    for (job, at) in &before {
        assert_eq!(after.get(job), Some(at), "job {job} was redone");
    }
    let tasks = jsonl(&out);
    assert_eq!(tasks.len(), 6);
    let hard: Vec<&str> = tasks
        .iter()
        .filter(|t| t["kind"] == "hard")
        .map(|t| t["instance_id"].as_str().expect("id"))
        .collect();
    assert_eq!(
        hard,
        ["more-itertools-b363d6b82c70", "more-itertools-ed86a1528aa0"]
    );
}

/// When each job's record was committed.
fn stage_times(store: &Path) -> std::collections::BTreeMap<i64, i64> {
    let s = trajforge_store::Store::open_existing(store)
        .expect("open")
        .expect("a store");
    s.all_stages()
        .expect("stages")
        .into_iter()
        .map(|st| (st.job_id, st.created_at))
        .collect()
}

/// `--sandbox podman`: the one hard change of a one-commit window (`tail` rejecting a negative
/// size) gets its FAIL_TO_PASS test from test runs in containers of the test image, and the
/// run cannot be resumed in another sandbox. (Skipped where podman is absent, unless CI.)
#[test]
fn podman_mines_a_hard_task_with_its_tests_run_in_containers() {
    let Some(image) = trajforge_testkit::podman_image() else {
        return;
    };
    let dir = tempfile::tempdir().expect("tempdir");
    let repo = more_itertools_clone(dir.path());
    let work = work_dir(dir.path());
    let out = dir.path().join("tasks.jsonl");
    let mine_one = |extra: &[&str]| {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_trajforge"));
        cmd.args(["tasks", "mine", "--repo"])
            .arg(&repo)
            // ed86a15's first parent: the window is that one change.
            .args(["--after", "fe24c338d8c3", "--until", UNTIL, "--out"])
            .arg(&out)
            .arg("--work-dir")
            .arg(&work)
            .args(["--statement", "commit", "--test-cmd"])
            .arg("python3 -m unittest -v -k TailTests")
            .args(extra);
        run(cmd)
    };
    let o = mine_one(&["--sandbox", "podman", "--image", &image]);
    assert_success(&o);
    let tasks = jsonl(&out);
    assert_eq!(tasks.len(), 1, "{tasks:?}");
    let tail = by_id(&tasks, "more-itertools-ed86a1528aa0");
    assert_eq!(tail["kind"], "hard", "{tail}");
    assert_eq!(
        strings(&tail["FAIL_TO_PASS"]),
        ["tests.test_recipes.TailTests.test_sized_negative"]
    );
    crate::run::assert_engine_folder(&work, "podman");
    // The same mining in bubblewrap is another run: refused, naming the sandbox.
    std::fs::remove_file(&out).expect("rm");
    let o = mine_one(&[]);
    assert_eq!(o.status.code(), Some(2), "{}", stderr(&o));
    assert!(stderr(&o).contains("sandbox"), "{}", stderr(&o));
}
