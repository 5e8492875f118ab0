//! `tasks mine` and `eval` on runs held in a real PostgreSQL server (issue 16; a throwaway
//! cluster of trajforge-testkit): the same tasks file and rows as with a run folder, resume
//! after kill -9 without redoing finished jobs, the database's other runs untouched, and the
//! refusals of a bad URL, an unknown run, `--run` without a database and a run of another kind.

use std::collections::BTreeMap;
use std::path::Path;
use std::process::{Command, Output, Stdio};
use std::time::Duration;

use trajforge_store::model::JobStatus;
use trajforge_store::{Location, Store};
use trajforge_testkit::Step;
use trajforge_testkit::postgres::cluster;

use crate::eval::{Agent, rows, scene, teacher_with};
use crate::run::work_dir;
use crate::scaleout::pg_status;
use crate::tasks::{mine, run};
use crate::{assert_success, input_error, jsonl, more_itertools_clone, stderr};

/// Run `run` of the database `url`, which must exist.
fn open(url: &str, run: &str) -> Store {
    Store::open_existing_at(&Location::Postgres {
        url: url.into(),
        run: run.into(),
    })
    .expect("open the run")
    .expect("the run exists")
}

/// Ids of the done jobs of run `run`.
fn done_jobs(url: &str, run: &str) -> Vec<i64> {
    open(url, run)
        .jobs()
        .expect("jobs")
        .into_iter()
        .filter(|j| j.status == JobStatus::Done)
        .map(|j| j.id)
        .collect()
}

/// When each job's stages of run `run` were committed, per job.
fn stage_times(url: &str, run: &str) -> BTreeMap<i64, Vec<i64>> {
    let mut times: BTreeMap<i64, Vec<i64>> = BTreeMap::new();
    for s in open(url, run).all_stages().expect("stages") {
        times.entry(s.job_id).or_default().push(s.created_at);
    }
    times
}

/// Assert that a command succeeded and said `text` on stderr.
#[track_caller]
fn succeeds_saying(out: &Output, text: &str) {
    assert_success(out);
    assert!(stderr(out).contains(text), "{}", stderr(out));
}

/// `cmd` without a database in the environment.
fn without_env(mut cmd: Command) -> Output {
    cmd.env_remove("TRAJFORGE_STORE");
    run(cmd)
}

#[test]
fn tasks_mine_into_postgres_writes_the_tasks_a_run_folder_gives_and_resumes() {
    let dir = tempfile::tempdir().expect("tempdir");
    let repo = more_itertools_clone(dir.path());
    let work = work_dir(dir.path());
    let url = cluster().fresh_database("mine");
    let in_folder = dir.path().join("folder.jsonl");
    assert_success(&run(mine(
        &repo,
        &work,
        &in_folder,
        &["--statement", "commit"],
    )));
    let out = dir.path().join("pg.jsonl");
    let pg = ["--statement", "commit", "--store", &url, "--run", "m"];
    succeeds_saying(&run(mine(&repo, &work, &out, &pg)), "(run m in postgres://");
    assert!(!dir.path().join("pg.run").exists(), "no run folder");
    let tasks = std::fs::read_to_string(&out).expect("tasks");
    assert_eq!(tasks, std::fs::read_to_string(&in_folder).expect("tasks"));
    assert_eq!(jsonl(&out).len(), 6);
    let status = pg_status(&url, "m");
    assert_eq!(
        (status["kind"].as_str(), status["done"].as_u64()),
        (Some("mine"), Some(6))
    );

    // A second run of the same database, on a one-change window: the first is untouched.
    let before = stage_times(&url, "m");
    let other = dir.path().join("other.jsonl");
    let mut second = mine(
        &repo,
        &work,
        &other,
        &["--statement", "commit", "--run", "m2"],
    );
    second
        .args(["--after", "fe24c33"])
        .env("TRAJFORGE_STORE", &url);
    assert_success(&run(second));
    assert_eq!(jsonl(&other).len(), 1);
    assert_eq!(pg_status(&url, "m2")["done"], 1);
    assert_eq!(stage_times(&url, "m"), before);
    // The same command again: nothing redone, and its own tasks file rewritten alike.
    succeeds_saying(
        &run(mine(&repo, &work, &out, &pg)),
        "(0 new), 6 already done",
    );
    assert_eq!(std::fs::read_to_string(&out).expect("tasks"), tasks);
    assert_eq!(stage_times(&url, "m"), before);

    // Refusals, each before anything is created.
    let fresh = dir.path().join("x.jsonl");
    let refused = |extra: &[&str]| {
        let mut args = vec!["--statement", "commit"];
        args.extend_from_slice(extra);
        without_env(mine(&repo, &work, &fresh, &args))
    };
    let err = input_error(&refused(&["--run", "m"]));
    assert!(err.contains("hint: add --store postgres://"), "{err}");
    let err = input_error(&refused(&["--store", &url]));
    assert!(err.contains("name one with --run NAME"), "{err}");
    let folder = dir.path().join("f.run").display().to_string();
    let err = input_error(&refused(&["--store", &folder, "--run", "m"]));
    assert!(err.contains("a run folder holds one run"), "{err}");
    let err = input_error(&refused(&["--store", &url, "--run", "no good"]));
    assert!(err.contains("use letters, digits"), "{err}");
    // Nothing listens on port 1.
    let bad = refused(&[
        "--store",
        "postgres://trajforge@127.0.0.1:1/none",
        "--run",
        "m",
    ]);
    assert_eq!(bad.status.code(), Some(1), "{}", stderr(&bad));
    assert!(
        stderr(&bad).contains("hint: check --store"),
        "{}",
        stderr(&bad)
    );
    assert!(!fresh.exists() && !dir.path().join("x.run").exists() && !Path::new(&folder).exists());
    let unknown = Command::new(env!("CARGO_BIN_EXE_trajforge"))
        .args(["status", "--store", &url, "--run", "nosuch"])
        .output()
        .expect("status");
    let err = input_error(&unknown);
    assert!(
        err.contains("no such run") && err.contains("hint: check --run"),
        "{err}"
    );
}

#[test]
fn eval_into_postgres_writes_the_rows_a_folder_gives_and_resumes_after_kill_9() {
    let Some(scene) = scene() else { return };
    let tasks_file = scene.write_tasks("tasks.jsonl", &scene.tasks);
    let url = cluster().fresh_database("eval");
    // Another run of the database: a mining run of one change, left untouched.
    let mined = scene.dir.path().join("mined.jsonl");
    let mut cmd = mine(&scene.repo, &scene.work, &mined, &["--statement", "commit"]);
    cmd.args(["--after", "fe24c33", "--store", &url, "--run", "m"]);
    assert_success(&run(cmd));
    // Its stages and jobs (the status's workers and throughput move with the clock).
    let mining = || (stage_times(&url, "m"), pg_status(&url, "m")["jobs"].clone());
    let mined_before = mining();

    // The teacher is served by a runtime of its own: the store's database client blocks, so
    // this thread reads the database outside any runtime.
    let runtime = tokio::runtime::Runtime::new().expect("runtime");
    // Fixed token counts: the fake server's estimate counts the bytes of its own call ids,
    // which differ between servers and after a kill.
    let gold = |delay: u64| {
        runtime.block_on(teacher_with(Agent::Gold, &scene.tasks, move |step| {
            let step = match step {
                Step::Reply(reply) => Step::Reply(reply.usage(1000, 50)),
                other => other,
            };
            step.after(Duration::from_millis(delay))
        }))
    };
    let fast = gold(0);
    let in_folder = scene.dir.path().join("eval-folder");
    let seeds = ["--seeds", "2"];
    assert_success(&run(scene.eval_cmd(&fast, &tasks_file, &in_folder, &seeds)));
    let server = gold(300);

    // Killed once a job is done and before all four are, then resumed to the end.
    let out_dir = scene.dir.path().join("eval-pg");
    let pg = ["--seeds", "2", "--store", &url, "--run", "e"];
    let mut child = scene
        .eval_cmd(&server, &tasks_file, &out_dir, &pg)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("spawn");
    let pg_run = Location::Postgres {
        url: url.clone(),
        run: "e".into(),
    };
    crate::kill_when(&mut child, || {
        Store::open_existing_at(&pg_run)
            .ok()
            .flatten()
            .is_some_and(|s| s.counts().is_ok_and(|c| c.done >= 1))
    });
    let done = done_jobs(&url, "e");
    assert!((1..4).contains(&done.len()), "{done:?}");
    let before = stage_times(&url, "e");
    let resumed = run(scene.eval_cmd(&server, &tasks_file, &out_dir, &pg));
    succeeds_saying(&resumed, &format!("{} already done", done.len()));
    assert!(
        stderr(&resumed).contains("(trajforge status --store URL --run NAME shows"),
        "{}",
        stderr(&resumed)
    );
    let after = stage_times(&url, "e");
    for job in &done {
        assert_eq!(after.get(job), before.get(job), "job {job} was redone");
    }
    assert_eq!(rows(&out_dir), rows(&in_folder));
    assert_eq!(rows(&out_dir).len(), 4);
    for file in ["predictions.jsonl", "predictions-seed1.jsonl"] {
        assert_eq!(
            jsonl(&out_dir.join(file)),
            jsonl(&in_folder.join(file)),
            "{file}"
        );
    }
    assert!(
        !out_dir.join(trajforge_store::DB_FILE).exists(),
        "the store is the database's"
    );
    let status = pg_status(&url, "e");
    assert_eq!(
        (status["kind"].as_str(), &status["eval"]["rows"]),
        (Some("eval"), &4.into())
    );
    assert_eq!(mining(), mined_before);
    // Once more: every row done, and the rows it wrote may be written again.
    assert_success(&run(scene.eval_cmd(&server, &tasks_file, &out_dir, &pg)));

    // Another run may not replace those rows, and a run name holds one kind of run.
    let other = ["--store", url.as_str(), "--run", "e2"];
    let err = input_error(&run(scene.eval_cmd(&server, &tasks_file, &out_dir, &other)));
    assert!(err.contains("would be overwritten"), "{err}");
    let fresh = scene.dir.path().join("eval-m");
    let on_mining = ["--store", url.as_str(), "--run", "m"];
    let err = input_error(&run(scene.eval_cmd(
        &server,
        &tasks_file,
        &fresh,
        &on_mining,
    )));
    assert!(err.contains("holds a run of `tasks mine`"), "{err}");
    let mut cmd = mine(
        &scene.repo,
        &scene.work,
        &fresh.join("t.jsonl"),
        &["--statement", "commit"],
    );
    cmd.args(["--store", &url, "--run", "e"]);
    let err = input_error(&run(cmd));
    assert!(
        err.contains("holds a run of `eval`") && err.contains("another --run NAME"),
        "{err}"
    );
    let mut generate = crate::taught(&["generate"], &server.url());
    generate
        .args(["--store", &url, "--run", "e", "--repo"])
        .arg(&scene.repo)
        .arg("--work-dir")
        .arg(&scene.work);
    let err = input_error(&run(generate));
    assert!(
        err.contains("holds a run of `eval`; `generate` cannot"),
        "{err}"
    );
    let worker = Command::new(env!("CARGO_BIN_EXE_trajforge"))
        .args(["worker", "--store", &url, "--run", "e", "--repo"])
        .arg(&scene.repo)
        .output()
        .expect("worker");
    let err = input_error(&worker);
    assert!(err.contains("run the same `eval` command again"), "{err}");
    assert_eq!(pg_status(&url, "e")["eval"]["rows"], 4);

    // Two processes share one evaluation: the one that runs out of jobs to claim first waits
    // for the other's, so each writes all four rows.
    let shared = ["--seeds", "2", "--store", &url, "--run", "e-two"];
    let dirs = ["two-a", "two-b"].map(|d| scene.dir.path().join(d));
    let children: Vec<_> = dirs
        .iter()
        .map(|dir| {
            scene
                .eval_cmd(&server, &tasks_file, dir, &shared)
                .stdout(Stdio::null())
                .stderr(Stdio::piped())
                .spawn()
                .expect("spawn")
        })
        .collect();
    for (child, dir) in children.into_iter().zip(&dirs) {
        let out = child.wait_with_output().expect("wait");
        succeeds_saying(&out, "wrote 4 rows");
        assert_eq!(rows(dir), rows(&in_folder), "{}", dir.display());
    }
    assert_eq!(done_jobs(&url, "e-two").len(), 4);
    // Both folders stay the run's: either command runs again and writes its rows again.
    for dir in &dirs {
        let again = run(scene.eval_cmd(&server, &tasks_file, dir, &shared));
        succeeds_saying(&again, "wrote 4 rows");
    }
}
