//! `trajforge-bench pipeline`: the code pipeline against scripted fake teachers.
//!
//! 1. Overhead per kept trajectory with an instant teacher: our process's CPU time and the
//!    wall time per kept pair, next to the command time the sandbox spent.
//! 2. Slot utilisation: a teacher that answers after a fixed latency and serves at most C
//!    requests at once; the share of those C slots our pipeline keeps busy (target 95%).

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Arc;
use std::time::{Duration, Instant};

use trajforge_pipeline::prepare::{Budget, CodeRunSpec, RunBasics, SandboxSpec};
use trajforge_pipeline::teacher::BuiltTeacher;
use trajforge_sandbox::{Environment, EnvironmentOptions};
use trajforge_teacher::{OpenAiTeacher, RequestLimiter, TeacherConfig};
use trajforge_testkit::code::CodeTeacher;
use trajforge_testkit::{FakeServer, Script, ServerOptions};

/// Options of the pipeline benchmark.
#[derive(Debug, clap::Args)]
pub struct PipelineArgs {
    /// Functions in the overhead run.
    #[arg(long, default_value_t = 24)]
    pub functions: usize,
    /// Teacher slots C of the utilisation run.
    #[arg(long, default_value_t = 64)]
    pub slots: usize,
    /// Fixed teacher latency of the utilisation run, in milliseconds.
    #[arg(long, default_value_t = 1000)]
    pub latency_ms: u64,
    /// Functions in the utilisation run.
    #[arg(long, default_value_t = 320)]
    pub slot_functions: usize,
}

fn cpu_seconds() -> f64 {
    // SAFETY: getrusage fills the struct; all-zero is a valid starting value.
    let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
    // SAFETY: RUSAGE_SELF with a pointer to a live local.
    unsafe { libc::getrusage(libc::RUSAGE_SELF, &mut usage) };
    let tv = |t: libc::timeval| t.tv_sec as f64 + t.tv_usec as f64 / 1e6;
    tv(usage.ru_utime) + tv(usage.ru_stime)
}

/// A git repository of the shipped sample in a folder the sandbox user can reach.
fn sample_repo(base: &Path) -> Result<PathBuf, String> {
    let repo = base.join("repo");
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../examples/sample-repo");
    let run = |args: &[&str], dir: &Path| -> Result<(), String> {
        let out = Command::new(args[0])
            .args(&args[1..])
            .current_dir(dir)
            .output()
            .map_err(|e| e.to_string())?;
        if out.status.success() {
            Ok(())
        } else {
            Err(String::from_utf8_lossy(&out.stderr).to_string())
        }
    };
    std::fs::create_dir_all(&repo).map_err(|e| e.to_string())?;
    run(
        &[
            "cp",
            "-R",
            &format!("{}/.", src.display()),
            &repo.display().to_string(),
        ],
        base,
    )?;
    run(&["git", "init", "-q"], &repo)?;
    run(&["git", "add", "-A"], &repo)?;
    run(
        &[
            "git",
            "-c",
            "user.name=b",
            "-c",
            "user.email=b@x.invalid",
            "commit",
            "-qm",
            "base",
        ],
        &repo,
    )?;
    Ok(repo)
}

struct Outcome {
    wall: f64,
    cpu: f64,
    kept: u64,
    requests: usize,
    command_seconds: f64,
    utilisation: Option<f64>,
    peak_in_flight: usize,
    mean_in_flight: f64,
}

#[allow(clippy::too_many_arguments)]
async fn one_run(
    env: &Environment,
    repo: &Path,
    base: &Path,
    name: &str,
    functions: usize,
    concurrency: usize,
    server_options: ServerOptions,
    slots: usize,
) -> Result<Outcome, String> {
    let teacher_script = Arc::new(CodeTeacher::new(0));
    let script = {
        let t = Arc::clone(&teacher_script);
        Script::handler(move |req| t.answer(req))
    };
    let server = FakeServer::start_with(script, server_options).await;
    let limiter = Arc::new(RequestLimiter::new(slots));
    let mut config = TeacherConfig::new(server.url(), "fake-model");
    config.api_key = None;
    config.limiter = Arc::clone(&limiter);
    config.backoff_base = Duration::from_millis(10);
    let teacher = Arc::new(OpenAiTeacher::new(config).map_err(|e| e.to_string())?);

    let run = CodeRunSpec {
        basics: RunBasics {
            store: None,
            out: base.join(name),
            n: functions,
            threshold: 0.5,
            seed: 1,
            menu: None,
            prompts: None,
            max_steps: 10,
            max_repeats: trajforge_agent::DEFAULT_MAX_REPEATS,
            budget: Budget::default(),
        },
        repo: repo.to_path_buf(),
        attempts: 1,
        demos: None,
        test_cmd: None,
        include_tests: false,
        exclude_tasks: None,
        sandbox: SandboxSpec {
            commit: "HEAD".into(),
            setup: None,
            command_timeout: Duration::from_secs(60),
            work_dir: None,
            backend: trajforge_sandbox::Backend::Bubblewrap,
        },
    }
    .load()
    .map_err(|e| e.to_string())?;
    let teacher = BuiltTeacher {
        teacher,
        remote: None,
        model: "fake-model".into(),
        url: server.url(),
        settings: Default::default(),
    };
    let prepared = run
        .prepare_in(env.clone(), &teacher)
        .map_err(|e| e.to_string())?;
    let store = Arc::clone(&prepared.store);

    // Sample the requests in flight every 5 ms; utilisation is measured between the moment
    // the slots first fill and the moment the queue of functions runs dry.
    let done = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let sampler = {
        let limiter = Arc::clone(&limiter);
        let store = Arc::clone(&store);
        let done = Arc::clone(&done);
        tokio::spawn(async move {
            let mut samples: Vec<(usize, bool)> = Vec::new();
            let mut pending = true;
            loop {
                tokio::time::sleep(Duration::from_millis(5)).await;
                if samples.len().is_multiple_of(20) {
                    pending = store.counts().map(|c| c.pending > 0).unwrap_or(false);
                }
                samples.push((limiter.in_flight(), pending));
                if done.load(std::sync::atomic::Ordering::SeqCst) || samples.len() > 2_000_000 {
                    break samples;
                }
            }
        })
    };
    let cpu0 = cpu_seconds();
    let started = Instant::now();
    prepared
        .drive(concurrency)
        .await
        .map_err(|e| e.to_string())?;
    let wall = started.elapsed().as_secs_f64();
    let cpu = cpu_seconds() - cpu0;
    done.store(true, std::sync::atomic::Ordering::SeqCst);
    let samples = sampler.await.unwrap_or_default();
    let utilisation = {
        // Steady state: from the first sample with 90% of the slots busy to the last sample
        // with functions still waiting to start.
        let first_full = samples
            .iter()
            .position(|(n, _)| *n as f64 >= slots as f64 * 0.9);
        let last_pending = samples.iter().rposition(|(_, p)| *p);
        match (first_full, last_pending) {
            (Some(a), Some(b)) if b > a => {
                let window = &samples[a..=b];
                Some(
                    window.iter().map(|(n, _)| *n as f64).sum::<f64>()
                        / (window.len() as f64 * slots as f64),
                )
            }
            _ => None,
        }
    };
    let peak_in_flight = samples.iter().map(|(n, _)| *n).max().unwrap_or(0);
    let mean_in_flight =
        samples.iter().map(|(n, _)| *n as f64).sum::<f64>() / samples.len().max(1) as f64;
    let trajectories = store.trajectories(true).map_err(|e| e.to_string())?;
    let kept = trajectories.iter().filter(|t| t.meta.kept).count() as u64;
    let command_seconds: f64 = trajectories
        .iter()
        .flat_map(|t| t.data["steps"].as_array().cloned().unwrap_or_default())
        .flat_map(|s| s["tools"].as_array().cloned().unwrap_or_default())
        .filter_map(|u| u["observation"]["duration"].as_f64())
        .sum::<f64>()
        / 1000.0;
    Ok(Outcome {
        wall,
        cpu,
        kept,
        requests: teacher_script.requests(),
        command_seconds,
        utilisation,
        peak_in_flight,
        mean_in_flight,
    })
}

/// Run the benchmark and print its figures.
pub fn run(args: PipelineArgs) -> Result<(), String> {
    let base =
        std::env::temp_dir().join(format!("trajforge-bench-pipeline-{}", std::process::id()));
    std::fs::create_dir_all(&base).map_err(|e| e.to_string())?;
    // The sandbox's unprivileged user must reach the work folder.
    Command::new("chmod")
        .args(["755"])
        .arg(&base)
        .status()
        .map_err(|e| e.to_string())?;
    let repo = sample_repo(&base)?;
    let options = EnvironmentOptions::new(base.join("work"));
    let env = Environment::prepare(&repo, None, &options).map_err(|e| e.to_string())?;
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .max_blocking_threads(64)
        .enable_all()
        .build()
        .map_err(|e| e.to_string())?;

    println!(
        "pipeline benchmark on the sample repository (more-itertools), scripted fake teachers"
    );
    let instant = runtime.block_on(one_run(
        &env,
        &repo,
        &base,
        "instant",
        args.functions,
        4,
        ServerOptions::instant(Duration::ZERO, 64),
        64,
    ))?;
    println!();
    println!(
        "1. instant teacher, {} functions, 4 in flight:",
        args.functions
    );
    println!(
        "   wall {:.2}s, our CPU {:.2}s, sandbox command time {:.2}s, {} teacher requests, {} kept trajectories",
        instant.wall, instant.cpu, instant.command_seconds, instant.requests, instant.kept
    );
    if instant.kept > 0 {
        println!(
            "   per kept trajectory: {:.1} ms of our CPU, {:.1} ms wall (everything but model time; commands run in the sandbox)",
            instant.cpu * 1000.0 / instant.kept as f64,
            instant.wall * 1000.0 / instant.kept as f64
        );
    }

    let concurrency = args.slots * 3;
    let slots = runtime.block_on(one_run(
        &env,
        &repo,
        &base,
        "slots",
        args.slot_functions,
        concurrency,
        ServerOptions::instant(Duration::from_millis(args.latency_ms), args.slots),
        args.slots,
    ))?;
    println!();
    println!(
        "2. teacher with {} ms latency and {} slots, {} functions, {concurrency} in flight:",
        args.latency_ms, args.slots, args.slot_functions
    );
    println!(
        "   wall {:.1}s, {} requests, {} kept",
        slots.wall, slots.requests, slots.kept
    );
    match slots.utilisation {
        Some(u) => println!(
            "   slots busy in steady state: {:.1}% (target >= 95%)  {}",
            u * 100.0,
            if u >= 0.95 { "ok" } else { "MISSED" }
        ),
        None => println!("   the slots never reached 90% busy (target >= 95%)  MISSED"),
    }
    println!(
        "   requests in flight: peak {} of {}, mean {:.1} over the whole run",
        slots.peak_in_flight, args.slots, slots.mean_in_flight
    );
    let ideal = slots.requests as f64 * args.latency_ms as f64 / 1000.0 / args.slots as f64;
    println!(
        "   whole run: {:.1}% of the ideal {:.1}s (ramp-up and the last functions included)",
        ideal / slots.wall * 100.0,
        ideal
    );
    let _ = std::fs::remove_dir_all(&base);
    Ok(())
}
