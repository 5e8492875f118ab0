//! Scale-out end to end (issue 16): runs held in a real PostgreSQL server (a throwaway
//! cluster of trajforge-testkit), worked on by several `trajforge worker` processes, compared
//! with a single SQLite run of the same seed.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;
use trajforge_testkit::FakeServer;
use trajforge_testkit::postgres::{PgCluster, cluster};

use crate::assert_success;
use crate::generate::{
    Scene, digest, generate_cmd, job_results, jobs_of_status, output, scene, server, status_digest,
};
use crate::run::work_dir;

const N: usize = 5;

/// `trajforge status --json --jobs` of run `run` in database `url`.
pub(crate) fn pg_status(url: &str, run: &str) -> Value {
    let out = Command::new(env!("CARGO_BIN_EXE_trajforge"))
        .args(["status", "--json", "--jobs", "--store", url, "--run", run])
        .output()
        .expect("status");
    assert_success(&out);
    serde_json::from_slice(&out.stdout).expect("status json")
}

/// The same digest as `generate::digest` of a run folder.
fn pg_digest(url: &str, run: &str) -> BTreeMap<String, Value> {
    status_digest(&pg_status(url, run))
}

fn pg_job_results(url: &str, run: &str) -> Vec<(String, String)> {
    jobs_of_status(&pg_status(url, run))
}

/// Jobs finished per worker, summed (a job finished twice would count twice).
fn jobs_done_by_workers(url: &str, run: &str) -> u64 {
    pg_status(url, run)["workers"]
        .as_array()
        .expect("workers")
        .iter()
        .filter_map(|w| w["jobs_done"].as_u64())
        .sum()
}

/// Create run `run` in `url` with `generate --no-work`.
async fn enqueue(scene: &Scene, server: &FakeServer, url: &str, run: &str) {
    assert_success(&create(scene, server, url, run, N, &[]).await);
}

/// `generate --no-work` of `n` functions with `extra` options, creating run `run` in `url`;
/// its output.
async fn create(
    scene: &Scene,
    server: &FakeServer,
    url: &str,
    run: &str,
    n: usize,
    extra: &[&str],
) -> std::process::Output {
    let out_dir = scene.dir.path().join(format!("unused-{run}"));
    let mut cmd = generate_cmd(scene, server, &out_dir, n, extra);
    cmd.args(["--no-work", "--store", url, "--run", run]);
    let out = output(cmd).await;
    assert!(!out_dir.exists(), "a shared-store run writes no folder");
    out
}

/// A `trajforge worker` on run `run`, with its own work folder (as on its own machine).
fn worker(
    scene: &Scene,
    server: &FakeServer,
    url: &str,
    run: &str,
    i: usize,
    extra: &[&str],
) -> Child {
    let home = scene.dir.path().join(format!("worker{i}"));
    std::fs::create_dir_all(&home).expect("mkdir");
    let work: PathBuf = work_dir(&home);
    Command::new(env!("CARGO_BIN_EXE_trajforge"))
        .args(["worker", "--store", url, "--run", run, "--repo"])
        .arg(&scene.repo)
        .args(["--teacher", &server.url(), "--work-dir"])
        .arg(&work)
        .args(["--backoff", "0.01", "--concurrency", "1"])
        .args(extra)
        .env_remove("OPENAI_API_KEY")
        .env_remove("TRAJFORGE_API_KEY")
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("worker starts")
}

async fn wait_success(child: Child) {
    let out = tokio::task::spawn_blocking(move || child.wait_with_output().expect("wait"))
        .await
        .expect("join");
    assert_success(&out);
}

/// Trajectories stored in run `run` of `pg` so far.
pub(crate) fn stored(pg: &PgCluster, url: &str, run: &str) -> u64 {
    pg.psql(
        url,
        &format!("SELECT COUNT(*) FROM trajforge_run_{run}.trajectories"),
    )
    .parse()
    .unwrap_or(0)
}

/// Wait until run `run` of `pg` has more than `before` trajectories.
pub(crate) async fn wait_stored(pg: &PgCluster, url: &str, run: &str, before: u64) {
    let deadline = Instant::now() + Duration::from_secs(300);
    while stored(pg, url, run) <= before {
        assert!(
            Instant::now() < deadline,
            "no trajectory stored within 300 s"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// A single SQLite run of the same seed: the reference.
async fn reference(scene: &Scene, server: &FakeServer) -> PathBuf {
    let dir = scene.dir.path().join("reference");
    let out = output(generate_cmd(scene, server, &dir, N, &[])).await;
    assert_success(&out);
    dir
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn four_workers_finish_a_run_equal_to_one_sqlite_run_and_leave_another_run_untouched() {
    let scene = scene();
    let server = server(0, 0).await;
    let reference = reference(&scene, &server).await;
    let url = cluster().fresh_database("four");
    enqueue(&scene, &server, &url, "main").await;
    enqueue(&scene, &server, &url, "other").await;
    let workers: Vec<Child> = (0..4)
        .map(|i| worker(&scene, &server, &url, "main", i, &[]))
        .collect();
    for w in workers {
        wait_success(w).await;
    }
    assert_eq!(pg_digest(&url, "main"), digest(&reference));
    assert_eq!(pg_job_results(&url, "main"), job_results(&reference));
    assert_eq!(jobs_done_by_workers(&url, "main"), N as u64);
    // Every job just finished, so all of them fall in the last hour's intervals.
    let throughput = &pg_status(&url, "main")["throughput"];
    let finished: u64 = throughput["finished"]
        .as_array()
        .expect("intervals")
        .iter()
        .filter_map(Value::as_u64)
        .sum();
    assert_eq!(finished, N as u64, "{throughput}");
    let other = pg_status(&url, "other");
    assert_eq!(other["done"], 0, "{other}");
    assert!(other["workers"].as_array().is_some_and(Vec::is_empty));
    assert_eq!(other["throughput"]["per_hour"], 0.0, "{other}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_killed_worker_s_job_is_reclaimed_and_a_paused_one_cannot_commit() {
    let scene = scene();
    let fast = server(0, 0).await;
    let reference = reference(&scene, &fast).await;
    let slow = server(0, 150).await;
    let url = cluster().fresh_database("faults");
    enqueue(&scene, &slow, &url, "r").await;

    // kill -9 mid-episode: its job comes back after the lease and is finished once.
    let mut killed = worker(&scene, &slow, &url, "r", 0, &["--lease", "3"]);
    wait_stored(cluster(), &url, "r", 0).await;
    killed.kill().expect("kill -9");
    let _ = killed.wait();
    // A paused worker: stopped past its lease while another finishes the run.
    let paused = worker(&scene, &slow, &url, "r", 1, &["--lease", "3"]);
    let before = stored(cluster(), &url, "r");
    wait_stored(cluster(), &url, "r", before).await;
    let pid = paused.id().to_string();
    assert!(
        Command::new("kill")
            .args(["-STOP", &pid])
            .status()
            .expect("kill")
            .success()
    );
    let rescuer = worker(&scene, &fast, &url, "r", 2, &["--lease", "3"]);
    wait_success(rescuer).await;
    assert_eq!(pg_status(&url, "r")["done"], N as u64);
    let finished = pg_digest(&url, "r");
    assert!(
        Command::new("kill")
            .args(["-CONT", &pid])
            .status()
            .expect("kill")
            .success()
    );
    wait_success(paused).await;
    // The resumed worker committed nothing: the run is as the rescuer left it.
    assert_eq!(pg_digest(&url, "r"), finished);
    assert_eq!(finished, digest(&reference));
    assert_eq!(pg_job_results(&url, "r"), job_results(&reference));
    assert_eq!(jobs_done_by_workers(&url, "r"), N as u64);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn workers_reconnect_after_the_database_restarts_mid_run_and_finish_it_equal_to_one_sqlite_run()
 {
    let scene = scene();
    let fast = server(0, 0).await;
    let reference = reference(&scene, &fast).await;
    let slow = server(0, 150).await;
    // A cluster of this test's own: restarting the shared one would cut the other tests off.
    let pg = std::sync::Arc::new(PgCluster::private());
    let url = pg.fresh_database("restart");
    enqueue(&scene, &slow, &url, "r").await;
    let workers: Vec<Child> = (0..2)
        .map(|i| worker(&scene, &slow, &url, "r", i, &[]))
        .collect();
    wait_stored(&pg, &url, "r", 0).await;
    let done_before = pg_status(&url, "r")["done"].as_u64().expect("done");
    assert!(done_before < N as u64, "the run ended before the restart");
    // Down for two seconds while both workers are in episodes: every open connection is cut.
    let restarting = std::sync::Arc::clone(&pg);
    tokio::task::spawn_blocking(move || restarting.restart(Duration::from_secs(2)))
        .await
        .expect("restart");
    for w in workers {
        wait_success(w).await;
    }
    assert_eq!(pg_digest(&url, "r"), digest(&reference));
    assert_eq!(pg_job_results(&url, "r"), job_results(&reference));
    assert_eq!(jobs_done_by_workers(&url, "r"), N as u64);
}

/// Export `args` of a run (a folder, or --store/--run) as raw JSON Lines; the file's text.
fn export_text(run: &[&str], out: &Path) -> String {
    let result = Command::new(env!("CARGO_BIN_EXE_trajforge"))
        .arg("export")
        .args(run)
        .args([
            "--format",
            "raw",
            "--max-tokens",
            "0",
            "--max-tool-tokens",
            "0",
            "--out",
        ])
        .arg(out)
        .env("TRAJFORGE_MODEL_DIR", "/nonexistent")
        .output()
        .expect("export");
    assert_success(&result);
    std::fs::read_to_string(out).expect("export file")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn store_copy_moves_a_run_to_postgres_and_back_with_equal_exports() {
    let scene = scene();
    let server = server(0, 0).await;
    let reference = reference(&scene, &server).await;
    let url = cluster().fresh_database("copy");
    let base = scene.dir.path();
    let copy = |from: &str, to: &str| {
        Command::new(env!("CARGO_BIN_EXE_trajforge"))
            .args(["store", "copy", from, to, "--run", "copied"])
            .output()
            .expect("copy")
    };
    let reference_s = reference.display().to_string();
    assert_success(&copy(&reference_s, &url));
    // A second copy into the same run is refused: a copy never overwrites.
    let again = copy(&reference_s, &url);
    assert_eq!(again.status.code(), Some(2), "{}", crate::stderr(&again));
    let back = base.join("back");
    assert_success(&copy(&url, &back.display().to_string()));
    let original = export_text(&[&reference_s], &base.join("a/data.jsonl"));
    let in_pg = export_text(
        &["--store", &url, "--run", "copied"],
        &base.join("b/data.jsonl"),
    );
    let round_trip = export_text(&[&back.display().to_string()], &base.join("c/data.jsonl"));
    assert!(!original.is_empty());
    assert_eq!(in_pg, original);
    assert_eq!(round_trip, original);
}

/// A worker takes the sandbox from the run (it has no sandbox options of its own): one that
/// joins a run created with `--sandbox podman --image` of an image its machine lacks is
/// refused before any episode, naming the image. (Skipped where podman is absent, unless CI.)
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn podman_a_worker_uses_the_run_s_container_image_and_is_refused_without_it() {
    let Some(image) = trajforge_testkit::podman_image() else {
        return;
    };
    let scene = scene();
    let server = server(0, 0).await;
    let url = cluster().fresh_database("noimage");
    // The test image under a name of this test's own, gone before the worker starts (as on
    // a machine without the image).
    let missing = format!("localhost/trajforge-test:worker-{}", std::process::id());
    let podman = |args: &[&str]| {
        trajforge_testkit::run_ok(Command::new("podman").args(args), "podman");
    };
    podman(&["tag", &image, &missing]);
    let sandbox = ["--sandbox", "podman", "--image", missing.as_str()];
    let created = create(&scene, &server, &url, "p", 1, &sandbox).await;
    podman(&["untag", &image, &missing]);
    assert_success(&created);
    let w = worker(&scene, &server, &url, "p", 0, &[]);
    let out = tokio::task::spawn_blocking(move || w.wait_with_output().expect("wait"))
        .await
        .expect("join");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(
        stderr.contains(&format!("in podman image {missing}"))
            && stderr.contains(&format!("`{missing}` not found by podman")),
        "{stderr}"
    );
    assert_eq!(pg_status(&url, "p")["done"], 0);
}

/// A run created with `--sandbox podman` is worked on in containers of its image, and the
/// worker's data equal a bubblewrap SQLite run's. 20 to 65 s of container starts for one
/// function on a shared 2-core machine, so on demand only (`--ignored`); the test above
/// checks cheaply that the worker takes the run's backend.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "20 to 65 s of container starts; run with --ignored"]
async fn podman_a_worker_runs_the_episodes_in_the_run_s_container_image() {
    let Some(image) = trajforge_testkit::podman_image() else {
        return;
    };
    let scene = scene();
    let server = server(0, 0).await;
    let reference = scene.dir.path().join("reference");
    assert_success(&output(generate_cmd(&scene, &server, &reference, 1, &[])).await);
    let url = cluster().fresh_database("podman");
    let sandbox = ["--sandbox", "podman", "--image", image.as_str()];
    assert_success(&create(&scene, &server, &url, "p", 1, &sandbox).await);
    wait_success(worker(&scene, &server, &url, "p", 0, &[])).await;
    assert_eq!(pg_digest(&url, "p"), digest(&reference));
    assert_eq!(pg_job_results(&url, "p"), job_results(&reference));
    crate::run::assert_engine_folder(&scene.dir.path().join("worker0/work"), "podman");
}
