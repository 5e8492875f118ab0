//! `generate --exclude-tasks` on the real history of more-itertools: the functions held-out
//! tasks' gold patches change are never sampled, every other function still is.

use std::collections::BTreeSet;
use std::path::Path;
use std::sync::Arc;

use serde_json::Value;
use trajforge_eval::{Task, TaskKind, write_jsonl};
use trajforge_testkit::FakeServer;
use trajforge_testkit::Script;
use trajforge_testkit::code::CodeTeacher;

use crate::recall::git;
use crate::run::work_dir;
use crate::{assert_success, more_itertools_clone, stderr, stdout, taught};

/// The held-out task of first-parent commit `commit`: its source diff as the gold patch.
fn task(repo: &Path, commit: &str) -> Task {
    let base = git(repo, &["rev-parse", &format!("{commit}^1")])
        .trim()
        .to_string();
    Task {
        instance_id: format!("more-itertools-{commit}"),
        repo: "more-itertools".into(),
        base_commit: base.clone(),
        patch: git(repo, &["diff", &base, commit, "--", "more_itertools"]),
        test_patch: git(repo, &["diff", &base, commit, "--", "tests"]),
        problem_statement: String::new(),
        fail_to_pass: Vec::new(),
        pass_to_pass: Vec::new(),
        created_at: String::new(),
        kind: Some(TaskKind::Soft),
        commit: Some(commit.to_string()),
        setup: None,
        test_cmd: None,
        web: None,
        extra: serde_json::Map::new(),
    }
}

/// `path::name` of every function `trajforge functions` lists in `repo`'s working tree.
fn listed(repo: &Path, cache: &Path) -> BTreeSet<String> {
    let out = crate::trajforge(&["functions", &repo.display().to_string()], cache);
    assert_success(&out);
    stdout(&out)
        .lines()
        .map(|l| {
            let f: Value = serde_json::from_str(l).expect("json line");
            format!(
                "{}::{}",
                f["path"].as_str().expect("path"),
                f["name"].as_str().expect("name")
            )
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn functions_touched_by_held_out_tasks_are_never_sampled_and_the_others_are() {
    let dir = tempfile::tempdir().expect("tempdir");
    let repo = more_itertools_clone(dir.path());
    // Three later merges that each change one function of more.py (interleave_evenly,
    // sliced, chunked); the split is the parent of the first.
    let commits = ["b363d6b", "c2859de", "9ddc55c"];
    let split = git(&repo, &["rev-parse", "b363d6b^1"]).trim().to_string();
    git(&repo, &["checkout", "-q", &split]);
    let tasks: Vec<Task> = commits.iter().map(|c| task(&repo, c)).collect();
    let tasks_file = dir.path().join("tasks.jsonl");
    write_jsonl(&tasks_file, &tasks).expect("write tasks");

    let cache = dir.path().join("cache");
    let at_split = listed(&repo, &cache);
    let touched: BTreeSet<String> = ["interleave_evenly", "sliced", "chunked"]
        .iter()
        .map(|n| format!("more_itertools/more.py::{n}"))
        .collect();
    assert!(
        touched.is_subset(&at_split),
        "the split commit has all three"
    );

    let teacher = Arc::new(CodeTeacher::new(0));
    let server = FakeServer::start(Script::handler(move |req| teacher.answer(req))).await;
    let run_dir = dir.path().join("run");
    let work = work_dir(dir.path());
    let generate = |tasks_file: &Path| {
        let mut cmd = taught(&["generate"], &server.url());
        cmd.arg("--repo")
            .arg(&repo)
            .args(["--commit", &split, "--exclude-tasks"])
            .arg(tasks_file)
            .arg("--out")
            .arg(&run_dir)
            // Every function is sampled; the budget stops the run after its first episode.
            .args(["-n", "100000", "--concurrency", "1", "--max-tokens", "1"])
            .arg("--work-dir")
            .arg(&work)
            .env("TRAJFORGE_CACHE_DIR", &cache);
        async move {
            tokio::task::spawn_blocking(move || cmd.output().expect("trajforge runs"))
                .await
                .expect("join")
        }
    };
    let out = generate(&tasks_file).await;
    let err = stderr(&out);
    assert!(out.status.success(), "{err}");
    let available = at_split.len() - touched.len();
    assert!(
        err.contains(&format!(
            "{available} functions sampled of {available}, 3 more left out as touched by the held-out tasks"
        )),
        "{err}"
    );

    let status = crate::trajforge(
        &["status", &run_dir.display().to_string(), "--json", "--jobs"],
        &cache,
    );
    assert_success(&status);
    let v: Value = serde_json::from_str(&stdout(&status)).expect("status json");
    let sampled: BTreeSet<String> = v["jobs"]
        .as_array()
        .expect("jobs")
        .iter()
        .map(|j| {
            format!(
                "{}::{}",
                j["function"]["path"].as_str().expect("path"),
                j["function"]["name"].as_str().expect("name")
            )
        })
        .collect();
    let left_out: BTreeSet<String> = at_split.difference(&sampled).cloned().collect();
    assert_eq!(
        left_out, touched,
        "exactly the touched functions are left out"
    );
    assert!(sampled.contains("more_itertools/more.py::chunked_even"));

    // A resume with another task set would change the run's meaning: refused.
    write_jsonl(&tasks_file, &tasks[..1]).expect("write tasks");
    let out = generate(&tasks_file).await;
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
    assert!(
        stderr(&out).contains("excluded functions (--exclude-tasks)"),
        "{}",
        stderr(&out)
    );
}

#[test]
fn a_task_whose_base_commit_is_not_in_the_repository_is_an_input_error() {
    let dir = tempfile::tempdir().expect("tempdir");
    let repo = more_itertools_clone(dir.path());
    let mut t = task(&repo, "c2859de");
    t.base_commit = "0123456789abcdef0123456789abcdef01234567".into();
    let tasks_file = dir.path().join("tasks.jsonl");
    write_jsonl(&tasks_file, &[t]).expect("write tasks");
    let out = crate::trajforge(
        &[
            "generate",
            "--repo",
            &repo.display().to_string(),
            "--exclude-tasks",
            &tasks_file.display().to_string(),
            "--teacher",
            "http://127.0.0.1:9/v1",
            "--model",
            "m",
            "--out",
            &dir.path().join("run").display().to_string(),
        ],
        &dir.path().join("cache"),
    );
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
    let err = stderr(&out);
    assert!(
        err.contains("its base commit 0123456789abcdef0123456789abcdef01234567 is not in"),
        "{err}"
    );
    assert!(
        err.contains("hint: the tasks must come from this repository's history"),
        "{err}"
    );
    assert!(
        !dir.path().join("run").exists(),
        "nothing is created before the tasks are read"
    );
}
