//! Bad inputs of every kind end in a one-line error with a hint and the documented exit
//! code, and leave nothing behind.

use std::process::Command;

use trajforge_testkit::{FakeServer, Script, Step};

use crate::input_error;

fn trajforge(args: &[&str]) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_trajforge"))
        .args(args)
        .env_remove("OPENAI_API_KEY")
        .env_remove("TRAJFORGE_API_KEY")
        .output()
        .expect("trajforge runs")
}

#[test]
fn zero_attempts_concurrency_steps_or_timeout_are_refused() {
    let dir = tempfile::tempdir().expect("tempdir");
    let repo = dir.path().display().to_string();
    let teacher = ["--teacher", "http://127.0.0.1:9/v1", "--model", "m"];
    let cases: [(&[&str], &str); 6] = [
        (
            &["generate", "--repo", &repo, "--out", "r", "--attempts", "0"],
            "--attempts",
        ),
        (
            &[
                "generate",
                "--repo",
                &repo,
                "--out",
                "r",
                "--concurrency",
                "0",
            ],
            "--concurrency",
        ),
        (
            &[
                "generate",
                "--repo",
                &repo,
                "--out",
                "r",
                "--max-steps",
                "0",
            ],
            "--max-steps",
        ),
        (
            &["run", "--repo", &repo, "--task", "t", "--max-steps", "0"],
            "--max-steps",
        ),
        (
            &[
                "run",
                "--repo",
                &repo,
                "--task",
                "t",
                "--command-timeout",
                "0",
            ],
            "--command-timeout",
        ),
        (
            &[
                "eval",
                "--repo",
                &repo,
                "--tasks",
                "t.jsonl",
                "--out",
                "r",
                "--concurrency",
                "0",
            ],
            "--concurrency",
        ),
    ];
    for (args, flag) in cases {
        let args: Vec<&str> = args.iter().chain(teacher.iter()).copied().collect();
        let err = input_error(&trajforge(&args));
        assert!(
            err.contains(flag) && err.contains("must be at least 1"),
            "{args:?}: {err}"
        );
    }
    assert!(!dir.path().join("r").exists());
}

#[test]
fn status_of_an_empty_database_file_is_refused_and_leaves_it_empty() {
    let dir = tempfile::tempdir().expect("tempdir");
    let db = dir.path().join("trajforge.db");
    std::fs::write(&db, b"").expect("empty db");
    let err = input_error(&trajforge(&["status", &dir.path().display().to_string()]));
    assert!(
        err.contains("empty file (0 bytes)") && err.contains("hint:"),
        "{err}"
    );
    assert_eq!(
        std::fs::metadata(&db).expect("db").len(),
        0,
        "no schema written"
    );
    let err = input_error(&trajforge(&[
        "status",
        "--json",
        &dir.path().display().to_string(),
    ]));
    assert!(err.contains("empty file"), "{err}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn generate_on_a_repository_without_commits_says_so_and_leaves_no_run() {
    let dir = tempfile::tempdir().expect("tempdir");
    let repo = dir.path().join("repo");
    std::fs::create_dir(&repo).expect("mkdir");
    std::fs::write(repo.join("lib.py"), "def f():\n    return 1\n").expect("write");
    trajforge_testkit::run_ok(
        Command::new("git").args(["init", "-q"]).current_dir(&repo),
        "git init",
    );
    let work = crate::run::work_dir(dir.path());
    let server = FakeServer::start(Script::repeat(Step::text("unused"))).await;
    let run_dir = dir.path().join("run");
    let (repo, run_dir_arg, work, url) = (
        repo.display().to_string(),
        run_dir.display().to_string(),
        work.display().to_string(),
        server.url(),
    );
    let out = tokio::task::spawn_blocking(move || {
        trajforge(&[
            "generate",
            "--repo",
            &repo,
            "--out",
            &run_dir_arg,
            "-n",
            "1",
            "--work-dir",
            &work,
            "--teacher",
            &url,
            "--model",
            "m",
        ])
    })
    .await
    .expect("join");
    let err = input_error(&out);
    assert!(err.contains("has no commits yet"), "{err}");
    assert!(err.contains("commit the files first"), "{err}");
    assert!(!run_dir.exists(), "a failed start leaves no run folder");
}
