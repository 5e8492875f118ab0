//! `trajforge generate` and `trajforge status` end to end: the real binary, the real sandbox,
//! the shipped sample repository, and a scripted teacher that answers every stage from the
//! content of the request, so runs are deterministic and comparable.

use std::collections::BTreeMap;
use std::path::Path;
use std::process::{Command, Output};
use std::sync::Arc;
use std::time::Duration;

use serde_json::Value;
use trajforge_testkit::code::{CodeTeacher, Fate, expected_result, fate};
use trajforge_testkit::{FakeServer, Script};

use crate::run::{sample_git_repo, work_dir};
use crate::{
    assert_success, input_error, kill_once_stored, status_json, taught, wait_until_stored,
};

pub(crate) struct Scene {
    pub(crate) dir: tempfile::TempDir,
    pub(crate) repo: std::path::PathBuf,
    pub(crate) work: std::path::PathBuf,
}

pub(crate) fn scene() -> Scene {
    let dir = tempfile::tempdir().expect("tempdir");
    let repo = sample_git_repo(dir.path());
    let work = work_dir(dir.path());
    Scene { dir, repo, work }
}

pub(crate) async fn server(fault_every: usize, delay_ms: u64) -> FakeServer {
    let teacher = Arc::new(CodeTeacher::new(fault_every));
    FakeServer::start(Script::handler(move |req| {
        let step = teacher.answer(req);
        if delay_ms > 0 {
            step.after(Duration::from_millis(delay_ms))
        } else {
            step
        }
    }))
    .await
}

pub(crate) fn generate_cmd(
    scene: &Scene,
    server: &FakeServer,
    run_dir: &Path,
    n: usize,
    extra: &[&str],
) -> Command {
    generate_cmd_to(scene, &server.url(), run_dir, n, extra)
}

/// `trajforge generate` of the sample repository with the teacher at `teacher`.
pub(crate) fn generate_cmd_to(
    scene: &Scene,
    teacher: &str,
    run_dir: &Path,
    n: usize,
    extra: &[&str],
) -> Command {
    let mut cmd = taught(&["generate"], teacher);
    cmd.arg("--repo")
        .arg(&scene.repo)
        .arg("--out")
        .arg(run_dir)
        .args(["-n", &n.to_string(), "--seed", "3", "--work-dir"])
        .arg(&scene.work)
        .args(["--backoff", "0.01", "--concurrency", "3"])
        .args(extra);
    cmd
}

pub(crate) async fn output(mut cmd: Command) -> Output {
    tokio::task::spawn_blocking(move || cmd.output().expect("trajforge runs"))
        .await
        .expect("join")
}

/// The meaning of a run: per job, its function, result, and per attempt the verification.
pub(crate) fn digest(run_dir: &Path) -> BTreeMap<String, Value> {
    let conn_path = run_dir.join("trajforge.db");
    assert!(conn_path.is_file(), "no store in {}", run_dir.display());
    status_digest(&status_json(run_dir, &[]))
}

/// The meaning of a run as its `status --json` states it (any store).
pub(crate) fn status_digest(status: &Value) -> BTreeMap<String, Value> {
    [
        "results",
        "kept_t1",
        "kept_t2",
        "recall_histogram",
        "rejections",
        "stages",
        "exits",
    ]
    .into_iter()
    .map(|k| (k.to_string(), status[k].clone()))
    .collect()
}

pub(crate) fn job_results(run_dir: &Path) -> Vec<(String, String)> {
    jobs_of_status(&status_json(run_dir, &["--jobs"]))
}

/// Each job's function name and result, from `status --json --jobs` (either store).
pub(crate) fn jobs_of_status(v: &Value) -> Vec<(String, String)> {
    v["jobs"]
        .as_array()
        .expect("jobs")
        .iter()
        .map(|j| {
            (
                j["function"]["name"].as_str().unwrap_or("").to_string(),
                j["result"].as_str().unwrap_or("").to_string(),
            )
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_run_keeps_exact_and_partial_pairs_and_rejects_the_rest_for_the_right_reasons() {
    let scene = scene();
    let server = server(0, 0).await;
    let run_dir = scene.dir.path().join("run");
    let out = output(generate_cmd(
        &scene,
        &server,
        &run_dir,
        12,
        &["--price-in", "1", "--price-out", "2"],
    ))
    .await;
    let stderr = String::from_utf8_lossy(&out.stderr).to_string();
    assert!(out.status.success(), "{stderr}");
    assert!(stderr.contains("functions: 12 (12 done"), "{stderr}");

    let jobs = job_results(&run_dir);
    assert_eq!(jobs.len(), 12);
    let mut fates = std::collections::BTreeSet::new();
    for (function, result) in &jobs {
        assert_eq!(result, expected_result(function), "{function}");
        fates.insert(format!("{:?}", fate(function)));
    }
    assert!(
        fates.len() >= 3,
        "the sample should exercise several paths: {fates:?}"
    );

    let d = digest(&run_dir);
    let hist: Vec<u64> = serde_json::from_value(d["recall_histogram"].clone()).expect("histogram");
    let exact = jobs.iter().filter(|(f, _)| fate(f) == Fate::Exact).count() as u64;
    let partial = jobs
        .iter()
        .filter(|(f, _)| fate(f) == Fate::Partial)
        .count() as u64;
    let wrong = jobs.iter().filter(|(f, _)| fate(f) == Fate::Wrong).count() as u64;
    assert_eq!(hist[9], exact, "r = 1 pairs");
    assert_eq!(hist[5], partial, "r = 0.5 pairs");
    assert_eq!(hist[0], wrong, "r = 0 pairs");
    assert_eq!(d["kept_t2"], exact + partial);
    // Self-check refusals exhaust the 3 attempts, each a fresh bug type.
    let no = jobs
        .iter()
        .filter(|(f, _)| fate(f) == Fate::SelfCheckNo)
        .count() as u64;
    assert_eq!(
        d["rejections"]["selfcheck_no"].as_u64().unwrap_or(0),
        3 * no
    );

    // status shows tokens and a cost from the stored prices.
    let text = Command::new(env!("CARGO_BIN_EXE_trajforge"))
        .arg("status")
        .arg(&run_dir)
        .output()
        .expect("status");
    let text = String::from_utf8_lossy(&text.stdout);
    assert!(
        text.contains("line recall r over") && text.contains("cost: $"),
        "{text}"
    );

    // Resuming a finished run does nothing new; changing the threshold is refused.
    let again = output(generate_cmd(&scene, &server, &run_dir, 12, &[])).await;
    assert_success(&again);
    assert_eq!(digest(&run_dir), d);
    let refused = output(generate_cmd(
        &scene,
        &server,
        &run_dir,
        12,
        &["--threshold", "1.0"],
    ))
    .await;
    let err = input_error(&refused);
    assert!(
        err.contains("threshold: 0.5 → 1") && err.contains("hint:"),
        "{err}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_run_killed_at_any_moment_resumes_to_the_same_store_as_an_uninterrupted_one() {
    let scene = scene();
    let n = 6;
    let reference_dir = scene.dir.path().join("reference");
    let server = server(0, 0).await;
    let out = output(generate_cmd(&scene, &server, &reference_dir, n, &[])).await;
    assert_success(&out);
    let reference = digest(&reference_dir);

    // Slow answers so kills land in the middle of episodes and stages.
    let slow = server_slow().await;
    let run_dir = scene.dir.path().join("killed");
    let mut progress = Vec::new();
    for _ in 0..3 {
        let mut cmd = generate_cmd(&scene, &slow, &run_dir, n, &[]);
        let mut child = cmd
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .expect("spawn");
        kill_once_stored(&mut child, &run_dir).await;
        if run_dir.join("trajforge.db").is_file() {
            let d = digest(&run_dir);
            let stages: u64 = d["stages"]
                .as_object()
                .map_or(0, |m| m.values().filter_map(Value::as_u64).sum());
            progress.push((
                stages,
                d["results"]
                    .as_object()
                    .map_or(0, |m| m.values().filter_map(Value::as_u64).sum::<u64>()),
            ));
        }
    }
    // The kills landed mid-run: stages were committed, yet not every function was finished.
    assert!(
        progress
            .iter()
            .any(|&(stages, done)| stages > 0 && done < n as u64),
        "{progress:?}"
    );
    let out = output(generate_cmd(&scene, &slow, &run_dir, n, &[])).await;
    assert_success(&out);
    assert_eq!(digest(&run_dir), reference);
    assert_eq!(job_results(&run_dir), job_results(&reference_dir));
}

async fn server_slow() -> FakeServer {
    server(0, 40).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn wall_time_counts_from_the_start_of_the_run() {
    // One function: its teacher calls follow one another, so the run's wall time is at least
    // their sum. (It used to start at the first stage, committed only after rollout 1.)
    let scene = scene();
    let server = server(0, 30).await;
    let run_dir = scene.dir.path().join("wall");
    let out = output(generate_cmd(&scene, &server, &run_dir, 1, &[])).await;
    assert_success(&out);
    let status = status_json(&run_dir, &[]);
    let wall = status["wall_seconds"].as_f64().expect("wall");
    let teacher = status["model_seconds"].as_f64().expect("teacher time");
    assert!(teacher > 0.0, "{status}");
    assert!(wall >= teacher, "wall {wall}s < teacher time {teacher}s");
    // A resume with nothing left to do adds no wall time.
    let out = output(generate_cmd(&scene, &server, &run_dir, 1, &[])).await;
    assert!(out.status.success());
    let again = status_json(&run_dir, &[])["wall_seconds"]
        .as_f64()
        .expect("wall");
    assert!((again - wall).abs() < 0.5, "{wall}s became {again}s");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn teacher_faults_at_a_high_rate_never_crash_the_run() {
    let scene = scene();
    let server = server(3, 0).await; // every third request fails (500 or dropped connection)
    let run_dir = scene.dir.path().join("faulty");
    let out = output(generate_cmd(&scene, &server, &run_dir, 6, &[])).await;
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    for (function, result) in job_results(&run_dir) {
        assert_eq!(result, expected_result(&function), "{function}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_behavioural_verdict_is_recorded_next_to_r() {
    let scene = scene();
    let server = server(0, 0).await;
    let run_dir = scene.dir.path().join("tests");
    let test_cmd = "python3 -m unittest -v tests.test_recipes 2>&1 | tail -n 400";
    let out = output(generate_cmd(
        &scene,
        &server,
        &run_dir,
        3,
        &["--test-cmd", test_cmd],
    ))
    .await;
    assert_success(&out);
    let status = status_json(&run_dir, &[]);
    let verified = status["stages"]["verify"].as_u64().unwrap_or(0);
    assert!(verified > 0, "{status}");
    assert_eq!(
        status["tests_recorded"].as_u64(),
        Some(verified - status["results"]["p2_empty"].as_u64().unwrap_or(0))
    );
    // Comment-only edits change no test outcome, so P1 and P2 agree.
    assert_eq!(status["tests_agree"], status["tests_recorded"]);
}

#[test]
fn bad_settings_fail_fast() {
    let run = |args: &[&str]| {
        Command::new(env!("CARGO_BIN_EXE_trajforge"))
            .args(args)
            .output()
            .expect("runs")
    };
    let out = run(&[
        "generate",
        "--repo",
        "/nope",
        "--teacher",
        "http://127.0.0.1:9/v1",
        "--model",
        "m",
        "--out",
        "/tmp/x",
        "--threshold",
        "2",
    ]);
    assert!(input_error(&out).contains("--threshold 2"));
    let out = run(&["status", "/definitely/not/a/run"]);
    assert!(input_error(&out).contains("not a run folder"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_trajforge_toml_holds_the_options_and_the_command_line_overrides_it() {
    let scene = scene();
    let server = server(0, 0).await;
    let project = scene.dir.path().join("project");
    std::fs::create_dir_all(&project).expect("mkdir");
    // Relative paths in the file are taken from the file's folder.
    std::fs::write(
        project.join("trajforge.toml"),
        format!(
            "teacher = \"{url}\"\nmodel = \"fake-model\"\nbackoff = 0.01\n\n[generate]\nrepo = \"{repo}\"\nout = \"run\"\nfunctions = 2\nseed = 3\nthreshold = 1.0\nconcurrency = 2\nwork_dir = \"{work}\"\n",
            url = server.url(),
            repo = scene.repo.display(),
            work = scene.work.display(),
        ),
    )
    .expect("write config");
    let run = |args: &[&str]| {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_trajforge"));
        cmd.args(args)
            .current_dir(&project)
            .env_remove("OPENAI_API_KEY")
            .env_remove("TRAJFORGE_API_KEY");
        output(cmd)
    };
    let out = run(&["generate"]).await;
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    assert!(
        stderr.contains("settings from") && stderr.contains("threshold"),
        "{stderr}"
    );
    let status = status_json(&project.join("run"), &[]);
    assert_eq!(status["functions"].as_u64(), Some(2), "{status}");

    // The file said threshold 1.0; the command line's 0.5 wins, and resuming with another
    // threshold is refused, which shows the file's value was the one recorded.
    let out = run(&["generate", "--threshold", "0.5"]).await;
    assert!(input_error(&out).contains("threshold"));

    // A typo in the file is named with its line.
    std::fs::write(project.join("trajforge.toml"), "[generate]\nthresold = 1\n").expect("write");
    let out = run(&["generate"]).await;
    let stderr = input_error(&out);
    assert!(
        stderr.contains("line 2") && stderr.contains("--thresold"),
        "{stderr}"
    );
    // --no-config ignores it.
    let out = run(&["--no-config", "status", "run"]).await;
    assert_success(&out);
}

fn counts(run_dir: &Path) -> (u64, u64) {
    let v = status_json(run_dir, &[]);
    (
        v["done"].as_u64().expect("done"),
        v["functions"].as_u64().expect("functions"),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_token_budget_stops_scheduling_and_leaves_a_resumable_run() {
    let scene = scene();
    let server = server(0, 0).await;
    let run_dir = scene.dir.path().join("budget");
    let budget = ["--concurrency", "1", "--max-tokens", "1"];
    let out = output(generate_cmd(&scene, &server, &run_dir, 4, &budget)).await;
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    assert!(stderr.contains("token budget reached"), "{stderr}");
    let (done, functions) = counts(&run_dir);
    assert_eq!(functions, 4);
    // The episode in flight when the budget ran out finished its stage and checkpointed; no
    // other function was started, and none is left claimed.
    assert!(done < 4, "done {done} of {functions}");
    let d = digest(&run_dir);
    let stages: u64 = d["stages"]
        .as_object()
        .map_or(0, |m| m.values().filter_map(Value::as_u64).sum());
    assert!(stages >= 1, "{d:?}");
    let status = status_json(&run_dir, &[]);
    assert_eq!(status["running"].as_u64(), Some(0), "{status}");

    // The same budget again: already spent, refused with what to do.
    let out = output(generate_cmd(&scene, &server, &run_dir, 4, &budget)).await;
    assert!(input_error(&out).contains("--max-tokens"));

    // Without the budget, the run resumes and finishes every function.
    let out = output(generate_cmd(&scene, &server, &run_dir, 4, &[])).await;
    assert_success(&out);
    assert_eq!(counts(&run_dir), (4, 4));
    for (function, result) in job_results(&run_dir) {
        assert_eq!(result, expected_result(&function), "{function}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_lets_episodes_in_flight_finish_and_the_run_resumes() {
    let scene = scene();
    let slow = server_slow().await;
    let run_dir = scene.dir.path().join("term");
    let mut cmd = generate_cmd(&scene, &slow, &run_dir, 6, &["--concurrency", "1"]);
    let mut child = cmd
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("spawn");
    wait_until_stored(&mut child, &run_dir).await;
    let term = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .expect("kill");
    assert!(term.success());
    let out = tokio::task::spawn_blocking(move || child.wait_with_output().expect("wait"))
        .await
        .expect("join");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{:?}: {stderr}", out.status);
    assert!(stderr.contains("interrupted (SIGTERM)"), "{stderr}");
    let (done, _) = counts(&run_dir);
    assert!(done < 6, "SIGTERM came too late to test anything: {stderr}");
    let out = output(generate_cmd(&scene, &slow, &run_dir, 6, &[])).await;
    assert_success(&out);
    assert_eq!(counts(&run_dir), (6, 6));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_patch_over_the_limit_is_rejected_and_never_sent_to_the_teacher() {
    let scene = scene();
    // Every rollout writes a 3 MB file and submits it.
    let server = FakeServer::start(Script::handler(|req| {
        let assistant_turns = req["messages"]
            .as_array()
            .map_or(0, |m| m.iter().filter(|m| m["role"] == "assistant").count());
        if req.get("tools").is_none_or(|t| t.as_array().is_none_or(Vec::is_empty)) {
            return trajforge_testkit::Step::text("Yes, it does.");
        }
        match assistant_turns {
            0 => trajforge_testkit::Step::tool_call(
                "bash",
                serde_json::json!({"command": "cd /workspace && yes 'a line of the big generated file' | head -c 3000000 > big.txt && wc -c big.txt"}),
            ),
            _ => trajforge_testkit::Step::tool_call("submit", serde_json::json!({})),
        }
    }))
    .await;
    let run_dir = scene.dir.path().join("run");
    let out = output(generate_cmd(
        &scene,
        &server,
        &run_dir,
        1,
        &["--attempts", "1"],
    ))
    .await;
    assert_success(&out);
    let status = status_json(&run_dir, &[]);
    assert_eq!(status["rejections"]["p1_too_large"], 1, "{status}");
    assert_eq!(status["results"]["p1_too_large"], 1, "{status}");
    // The rollout's requests only; no self-check or PR prompt carried the patch.
    let chats: Vec<_> = server
        .recorded()
        .into_iter()
        .filter(|r| r.path.ends_with("/chat/completions"))
        .collect();
    assert_eq!(chats.len(), 3, "two steps and the confirming submit");
    for r in &chats {
        let size = r.body.to_string().len();
        assert!(size < 200_000, "a request of {size} bytes");
        assert!(
            r.body["tools"].is_array(),
            "a request without tools: {}",
            r.body
        );
    }
    // The stored patch is the cut head with its note, not 3 MB.
    let db = std::fs::metadata(run_dir.join("trajforge.db"))
        .expect("db")
        .len();
    assert!(db < 8 << 20, "store of {db} bytes");
}
