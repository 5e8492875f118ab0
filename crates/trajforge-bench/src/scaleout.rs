//! Scale-out store (issue 16): N jobs worked by W worker processes on one PostgreSQL run
//! (a throwaway cluster of trajforge-testkit) with an instant teacher, i.e. nothing but the
//! store's work per job: claim, two stage commits (one with a trajectory) and the finish,
//! each under the lease check. Figures: claims per second, commit latency p50/p99, duplicates
//! (must be 0), next to the same loop in one process on SQLite; and the time until a job of a
//! worker killed with SIGKILL is claimed by another.

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::json;
use trajforge_store::model::{Stage, StageName};
use trajforge_store::{ExitLabel, Location, Outcome, Rollout, Store, TrajectoryRecord};
use trajforge_testkit::postgres::cluster;

/// Options of the scale-out benchmark.
#[derive(Debug, clap::Args)]
pub struct ScaleoutArgs {
    /// Jobs in the run.
    #[arg(long, default_value_t = 10_000)]
    pub jobs: usize,
    /// Worker processes.
    #[arg(long, default_value_t = 16)]
    pub workers: usize,
    /// Lease of the kill -9 reclaim measurement, in seconds.
    #[arg(long, default_value_t = 5)]
    pub lease: u64,
}

/// Options of one worker process (started by the benchmark itself).
#[derive(Debug, clap::Args)]
pub struct WorkerArgs {
    /// The database.
    #[arg(long)]
    pub url: String,
    /// The run.
    #[arg(long)]
    pub run: String,
    /// Lease in milliseconds.
    #[arg(long)]
    pub lease_ms: u64,
    /// Claim one job and hold it without committing (the process to kill).
    #[arg(long)]
    pub hang: bool,
}

fn stage(name: StageName, v: serde_json::Value) -> Result<Stage, String> {
    Stage::from_json(name, v).map_err(|e| e.to_string())
}

/// The first rollout's stage every benchmark job commits.
pub(crate) fn rollout1() -> Result<Stage, String> {
    stage(
        StageName::Rollout1,
        json!({"bug": "b", "bug_index": 0, "task": "t", "exit": "submitted", "patch": "p", "steps": 3}),
    )
}

/// A submitted P1 of `job` (a patch of its own) whose one message says `content`.
pub(crate) fn trajectory(job: i64, content: &str) -> TrajectoryRecord {
    TrajectoryRecord {
        rollout: Rollout::T1,
        exit_status: ExitLabel::Submitted,
        patch: Some(format!("--- a/f\n+++ b/f\n@@ -1 +1 @@\n-x\n+job {job}\n")),
        data: json!({"messages": [{"role": "user", "content": content}]}),
    }
}

/// What one process measured: finished job ids, commit latencies and each job's whole store
/// time (claim, commits and finish), in µs.
#[derive(Debug, Default, serde::Serialize, serde::Deserialize)]
struct Measured {
    done: Vec<i64>,
    latencies_us: Vec<u64>,
    per_job_us: Vec<u64>,
    /// CPU time of the working process (user + system), seconds.
    cpu_seconds: f64,
}

/// Work until nothing is claimable.
fn work(store: &Store, owner: &str, lease: Duration) -> Result<Measured, String> {
    let r1 = rollout1()?;
    let sc = stage(StageName::Selfcheck, json!({"answer": "yes", "tries": 1}))?;
    store.begin_session(owner).map_err(|e| e.to_string())?;
    let cpu = crate::eval::cpu_seconds();
    let mut m = Measured::default();
    let timed = |lat: &mut Vec<u64>,
                 f: &mut dyn FnMut() -> trajforge_store::Result<()>|
     -> Result<(), String> {
        let t = Instant::now();
        f().map_err(|e| e.to_string())?;
        lat.push(t.elapsed().as_micros() as u64);
        Ok(())
    };
    loop {
        let started = Instant::now();
        let Some(job) = store.claim(owner, lease).map_err(|e| e.to_string())? else {
            break;
        };
        let t = trajectory(job.id, "task");
        // The duplicate check the pipeline makes between the P1 and the self-check.
        let check = store
            .has_other_t1_patch(job.id, t.patch.as_deref().unwrap_or(""))
            .map_err(|e| e.to_string())?;
        if check {
            return Err(format!(
                "job {}: its unique P1 taken for a duplicate",
                job.id
            ));
        }
        let lat = &mut m.latencies_us;
        timed(lat, &mut || {
            store.record_stage(owner, job.id, 1, &r1, Some(&t), None)
        })?;
        timed(lat, &mut || {
            store.record_stage(owner, job.id, 1, &sc, None, None)
        })?;
        timed(lat, &mut || store.finish(owner, job.id, &Outcome::Kept))?;
        m.per_job_us.push(started.elapsed().as_micros() as u64);
        m.done.push(job.id);
    }
    m.cpu_seconds = crate::eval::cpu_seconds() - cpu;
    Ok(m)
}

/// One worker process: prints its finished ids and latencies as JSON.
pub fn worker(args: WorkerArgs) -> Result<(), String> {
    let location = Location::parse(&args.url, Some(&args.run)).map_err(|e| e.to_string())?;
    let store = Store::open_at(&location).map_err(|e| e.to_string())?;
    let owner = format!("bench:{}", std::process::id());
    let lease = Duration::from_millis(args.lease_ms);
    if args.hang {
        let job = store.claim(&owner, lease).map_err(|e| e.to_string())?;
        println!("{}", json!({"claimed": job.map(|j| j.id)}));
        std::thread::sleep(Duration::from_secs(3600));
        return Ok(());
    }
    let measured = work(&store, &owner, lease)?;
    println!(
        "{}",
        serde_json::to_string(&measured).map_err(|e| e.to_string())?
    );
    Ok(())
}

fn percentile(sorted: &[u64], p: f64) -> f64 {
    if sorted.is_empty() {
        return 0.0;
    }
    let i = ((sorted.len() - 1) as f64 * p).round() as usize;
    sorted[i] as f64 / 1000.0
}

/// Throughput, commit latency and store time per job of `m` over `wall` seconds.
fn figures(m: &mut Measured, wall: f64) -> String {
    m.latencies_us.sort_unstable();
    m.per_job_us.sort_unstable();
    let n = m.done.len().max(1) as f64;
    format!(
        "{} jobs in {wall:.2} s = {:.0} claims/s, commit p50 {:.2} ms p99 {:.2} ms; store time per job (claim, check, 2 commits, finish) mean {:.2} ms p50 {:.2} ms p99 {:.2} ms (wall, waits for the machine's cores included); client CPU per job {:.2} ms",
        m.done.len(),
        m.done.len() as f64 / wall,
        percentile(&m.latencies_us, 0.5),
        percentile(&m.latencies_us, 0.99),
        m.per_job_us.iter().sum::<u64>() as f64 / n / 1000.0,
        percentile(&m.per_job_us, 0.5),
        percentile(&m.per_job_us, 0.99),
        m.cpu_seconds * 1000.0 / n,
    )
}

/// CPU seconds the PostgreSQL server of `cluster` spent so far: its postmaster's and its
/// exited backends' (a finished worker's backend is counted once it exits); `None` when
/// /proc cannot tell.
fn server_cpu_seconds(cluster: &trajforge_testkit::postgres::PgCluster) -> Option<f64> {
    let pid = std::fs::read_to_string(cluster.socket_dir().join("data/postmaster.pid")).ok()?;
    let stat =
        std::fs::read_to_string(format!("/proc/{}/stat", pid.lines().next()?.trim())).ok()?;
    // Fields after the command's closing parenthesis; utime is field 14 of the line.
    let fields: Vec<&str> = stat.rsplit_once(')')?.1.split_whitespace().collect();
    let ticks: f64 = fields
        .get(11..15)?
        .iter()
        .filter_map(|f| f.parse::<f64>().ok())
        .sum();
    // SAFETY: sysconf reads a constant.
    let hz = unsafe { libc::sysconf(libc::_SC_CLK_TCK) } as f64;
    Some(ticks / hz.max(1.0))
}

/// `n` jobs to add.
pub(crate) fn jobs(n: usize) -> Vec<(String, serde_json::Value)> {
    (0..n).map(|i| (format!("f{i}"), json!({"i": i}))).collect()
}

/// Run the benchmark.
pub fn run(args: ScaleoutArgs) -> Result<(), String> {
    let me = std::env::current_exe().map_err(|e| e.to_string())?;
    let err = |e: trajforge_store::StoreError| e.to_string();
    // Baseline: the same loop in one process on SQLite.
    let dir = tempfile::tempdir().map_err(|e| e.to_string())?;
    let sqlite = Store::open(dir.path()).map_err(err)?;
    sqlite.add_jobs(&jobs(args.jobs)).map_err(err)?;
    let t = Instant::now();
    let mut m = work(&sqlite, "bench:sqlite", Duration::from_secs(60))?;
    let sqlite_wall = t.elapsed().as_secs_f64();
    println!("sqlite, 1 process:      {}", figures(&mut m, sqlite_wall));
    let sqlite_cpu_ms = m.cpu_seconds * 1000.0 / m.done.len().max(1) as f64;

    let url = cluster().fresh_database("bench_scaleout");
    let location = Location::parse(&url, Some("bench")).map_err(err)?;
    let store = Store::open_at(&location).map_err(err)?;
    store.add_jobs(&jobs(args.jobs)).map_err(err)?;
    let server_cpu = server_cpu_seconds(cluster());
    let t = Instant::now();
    let children: Vec<_> = (0..args.workers)
        .map(|_| {
            Command::new(&me)
                .args([
                    "scaleout-worker",
                    "--url",
                    &url,
                    "--run",
                    "bench",
                    "--lease-ms",
                    "60000",
                ])
                .stdout(Stdio::piped())
                .spawn()
                .map_err(|e| e.to_string())
        })
        .collect::<Result<_, _>>()?;
    let mut all = Measured::default();
    for c in children {
        let out = c.wait_with_output().map_err(|e| e.to_string())?;
        if !out.status.success() {
            return Err("a worker failed".into());
        }
        let m: Measured = serde_json::from_slice(&out.stdout).map_err(|e| e.to_string())?;
        all.done.extend(m.done);
        all.latencies_us.extend(m.latencies_us);
        all.per_job_us.extend(m.per_job_us);
        all.cpu_seconds += m.cpu_seconds;
    }
    let wall = t.elapsed().as_secs_f64();
    let mut distinct = all.done.clone();
    distinct.sort_unstable();
    distinct.dedup();
    let duplicates = all.done.len() - distinct.len();
    let counts = store.counts().map_err(err)?;
    println!(
        "postgres, {} processes: {}; duplicates {duplicates} (target 0); done in the store {} of {}",
        args.workers,
        figures(&mut all, wall),
        counts.done,
        args.jobs
    );
    if let (Some(before), Some(after)) = (server_cpu, server_cpu_seconds(cluster())) {
        let n = all.done.len().max(1) as f64;
        let (client, server) = (all.cpu_seconds * 1000.0 / n, (after - before) * 1000.0 / n);
        println!(
            "postgres server CPU per job: {server:.2} ms (the workers' backends, counted as they exit)"
        );
        // The overhead is what the store costs the machine per job, whatever the wait for
        // a core (the wall times above grow with the load of the machine).
        let total = client + server;
        println!(
            "store overhead per job (CPU of workers + server): {client:.2} + {server:.2} = {total:.2} ms (target: under 5 ms: {}); sqlite, 1 process: {sqlite_cpu_ms:.2} ms",
            if total < 5.0 { "ok" } else { "MISSED" }
        );
    }

    // Reclaim after kill -9: one job held by a process that is then killed.
    let run = "reclaim";
    let loc = Location::parse(&url, Some(run)).map_err(err)?;
    let r = Store::open_at(&loc).map_err(err)?;
    r.add_jobs(&jobs(1)).map_err(err)?;
    let mut holder = Command::new(&me)
        .args(["scaleout-worker", "--url", &url, "--run", run, "--hang"])
        .args(["--lease-ms", &(args.lease * 1000).to_string()])
        .stdout(Stdio::piped())
        .spawn()
        .map_err(|e| e.to_string())?;
    while r.counts().map_err(err)?.running == 0 {
        std::thread::sleep(Duration::from_millis(20));
    }
    holder.kill().map_err(|e| e.to_string())?;
    let killed = Instant::now();
    let _ = holder.wait();
    let poll = Duration::from_millis(100);
    while r
        .claim("bench:rescuer", Duration::from_secs(60))
        .map_err(err)?
        .is_none()
    {
        std::thread::sleep(poll);
    }
    println!(
        "reclaim after kill -9: {:.2} s with a {} s lease (target: under the lease + 5 s)",
        killed.elapsed().as_secs_f64(),
        args.lease
    );
    Ok(())
}
