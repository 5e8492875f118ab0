//! Benchmarks that measure trajforge against a reference measured in the same run, one
//! subcommand (and one module) each, printing every figure next to its baseline and target:
//!
//! - `ingest REPO`: `trajforge functions` against Python's own `ast`
//!   (scripts/py_functions.py) over the same Python files, cold and with a warm cache; each
//!   program runs as a child process so wall time and peak RSS are its own.
//! - `agent`, `local`, `messages`, `teachers`: the agent loop's overhead per step, the
//!   embedded teacher and `trajforge serve` against raw llama.cpp, the Messages proxy
//!   against its upstream, several teacher servers against one.
//! - `pipeline`, `eval` (code in `eval.rs`, web in `eval_web.rs`), `web`, `export`, `view`:
//!   the runs, evaluations, browser, exports and viewer through the library's own run API.
//! - `sandbox`, `scaleout`: the hardened sandbox against the bare one, and PostgreSQL workers
//!   against one SQLite process; `store-copy`: a large run's copy against holding it in memory.

// A benchmark's whole point is to print figures.
#![allow(clippy::print_stdout, clippy::print_stderr)]
// wait4(2) is the one way to get a child's own peak RSS; see `run_child`.
#![allow(unsafe_code)]

use std::path::{Path, PathBuf};
use std::process::{Command, ExitCode, Stdio};
use std::time::{Duration, Instant};

use clap::{Parser, Subcommand};

mod abandon;
mod agent;
mod eval;
mod eval_web;
mod export;
mod local;
mod messages;
mod pipeline;
mod sandbox;
mod scaleout;
mod store_copy;
mod teachers;
mod view;
mod web;

/// Benchmarks of trajforge against reference tools.
#[derive(Debug, Parser)]
#[command(name = "trajforge-bench")]
struct Cli {
    #[command(subcommand)]
    bench: Bench,
}

#[derive(Debug, Subcommand)]
enum Bench {
    /// Function listing on a repository against Python's `ast`.
    Ingest {
        /// The repository (a large Python codebase, e.g. Django's sdist).
        repo: PathBuf,
        /// Runs of each program; the median is reported.
        #[arg(long, default_value_t = 3)]
        runs: usize,
        /// The trajforge binary [default: next to this one].
        #[arg(long)]
        trajforge: Option<PathBuf>,
        /// The reference script [default: scripts/py_functions.py of this checkout].
        #[arg(long)]
        reference: Option<PathBuf>,
    },
    /// Agent runtime: overhead per step, concurrent episodes, workspace creation, and
    /// CPU per step against mini-swe-agent.
    Agent(agent::AgentArgs),
    /// Local teacher: tokens/s of raw llama.cpp, the in-process teacher and `trajforge serve`,
    /// and a synthetic episode with and without KV-cache prefix reuse.
    Local(local::LocalArgs),
    /// `serve` when clients give up: the wait of a small request behind N abandoned ones and
    /// peak memory, a baseline binary against this one (issue 19).
    Abandon(abandon::AbandonArgs),
    /// Messages API: time to first token and total time through `trajforge serve --upstream`
    /// against the upstream called directly.
    Messages(messages::MessagesArgs),
    /// Code pipeline: overhead per kept trajectory, and teacher slots kept busy (issue 5).
    Pipeline(pipeline::PipelineArgs),
    /// Evaluation: overhead per (task, seed) row against an instant fake teacher: code tasks next to
    /// the bare checkout + patches + tests baseline, web tasks next to the bare browser work.
    Eval(eval::EvalArgs),
    /// Export: N trajectories with exact token counts and truncation against Python tokenizers + jinja2.
    Export(export::ExportArgs),
    /// Sandbox: cost per command of the seccomp filter and the reduced /etc against the
    /// unhardened sandbox, in the same run.
    Sandbox(sandbox::SandboxArgs),
    /// `trajforge view` on a synthetic run of 100,000 trajectories: overview, list, search p95,
    /// a 115-step trajectory page and server memory against the targets.
    View(view::ViewArgs),
    /// Web: crawl rate, snapshot time against Playwright's aria_snapshot(), action latency.
    Web(web::WebArgs),
    /// Several teacher servers: throughput of two scripted servers against one, and the share
    /// of each episode's requests kept on one server.
    Teachers(teachers::TeachersArgs),
    /// Scale-out store: N jobs by W worker processes on PostgreSQL against one SQLite
    /// process; claims/s, commit latency, duplicates, reclaim time after kill -9.
    Scaleout(scaleout::ScaleoutArgs),
    /// One worker process of `scaleout` (started by it).
    #[command(hide = true)]
    ScaleoutWorker(scaleout::WorkerArgs),
    /// `store copy` of a large synthetic run, SQLite to PostgreSQL and back: peak RSS
    /// against every row held in memory.
    StoreCopy(store_copy::StoreCopyArgs),
    /// One child process of `store-copy` (started by it).
    #[command(hide = true)]
    StoreCopyChild(store_copy::StoreCopyChildArgs),
}

/// What one child process did.
#[derive(Debug, Clone)]
struct Measured {
    wall: Duration,
    cpu: Duration,
    max_rss_kb: u64,
    stderr: String,
}

fn main() -> ExitCode {
    // In a sandbox this process may be the Landlock helper (it then never returns).
    trajforge_sandbox::landlock::run_helper_if_asked();
    let cli = Cli::parse();
    let result = match cli.bench {
        Bench::Ingest {
            repo,
            runs,
            trajforge,
            reference,
        } => ingest(&repo, runs.max(1), trajforge, reference),
        Bench::Agent(args) => agent::run(args),
        Bench::Local(args) => local::run(args),
        Bench::Messages(args) => messages::run(args),
        Bench::Abandon(args) => abandon::run(args),
        Bench::Pipeline(args) => pipeline::run(args),
        Bench::Eval(args) => eval::run(args),
        Bench::Web(args) => web::run(args),
        Bench::Sandbox(args) => sandbox::run(args),
        Bench::Export(args) => export::run(args),
        Bench::Teachers(args) => teachers::run(args),
        Bench::View(args) => view::run(args),
        Bench::Scaleout(args) => scaleout::run(args),
        Bench::ScaleoutWorker(args) => scaleout::worker(args),
        Bench::StoreCopy(args) => store_copy::run(args),
        Bench::StoreCopyChild(args) => store_copy::child(args),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(message) => {
            eprintln!("error: {message}");
            ExitCode::from(1)
        }
    }
}

fn sibling_binary(name: &str) -> Result<PathBuf, String> {
    let me = std::env::current_exe().map_err(|e| format!("cannot locate this binary: {e}"))?;
    let path = me.with_file_name(name);
    if path.is_file() {
        Ok(path)
    } else {
        Err(format!(
            "{} not found; build it first: cargo build --release -p trajforge -p trajforge-bench",
            path.display()
        ))
    }
}

fn ingest(
    repo: &Path,
    runs: usize,
    trajforge: Option<PathBuf>,
    reference: Option<PathBuf>,
) -> Result<(), String> {
    if !repo.is_dir() {
        return Err(format!(
            "{}: not a directory (scripts/fetch-test-data.sh --bench fetches Django's sdist)",
            repo.display()
        ));
    }
    let trajforge = match trajforge {
        Some(p) => p,
        None => sibling_binary("trajforge")?,
    };
    let reference = reference.unwrap_or_else(|| {
        Path::new(env!("CARGO_MANIFEST_DIR")).join("../../scripts/py_functions.py")
    });
    let cache = std::env::temp_dir().join(format!("trajforge-bench-cache-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&cache);

    // The same files on both sides: every .py file, tests and vendored folders included.
    let ours_args = |cache_arg: Vec<String>| {
        let mut args: Vec<String> = vec![
            "functions".into(),
            repo.display().to_string(),
            "--lang".into(),
            "python".into(),
            "--include-tests".into(),
            "--no-default-excludes".into(),
            "--summary".into(),
            "json".into(),
        ];
        args.extend(cache_arg);
        args
    };
    let py_args = vec![
        reference.display().to_string(),
        repo.display().to_string(),
        "--quiet-stats".to_string(),
    ];

    println!("ingest benchmark on {}", repo.display());
    println!(
        "  {runs} runs each, median reported; this machine: {} cores",
        cores()
    );

    let mut ast_runs = Vec::new();
    let mut cold_runs = Vec::new();
    // Interleave the programs so a noisy neighbour hurts both alike.
    for _ in 0..runs {
        ast_runs.push(run_child(Path::new("python3"), &py_args)?);
        cold_runs.push(run_child(
            &trajforge,
            &ours_args(vec!["--no-cache".into()]),
        )?);
    }
    let cache_args = vec!["--cache-dir".to_string(), cache.display().to_string()];
    let _prime = run_child(&trajforge, &ours_args(cache_args.clone()))?;
    let mut warm_runs = Vec::new();
    for _ in 0..runs {
        warm_runs.push(run_child(&trajforge, &ours_args(cache_args.clone()))?);
    }
    let _ = std::fs::remove_dir_all(&cache);

    let ast = median(&ast_runs);
    let cold = median(&cold_runs);
    let warm = median(&warm_runs);
    let ast_stats = last_json(&ast.stderr)?;
    let cold_stats = last_json(&cold.stderr)?;
    let warm_stats = last_json(&warm.stderr)?;

    let ast_files = num(&ast_stats, "files");
    let ast_lines = num(&ast_stats, "lines");
    let ast_functions = num(&ast_stats, "functions");
    let our_files: f64 = cold_stats["files_by_language"]
        .as_object()
        .map_or(0.0, |m| m.values().filter_map(|v| v.as_f64()).sum());
    let our_lines = num(&cold_stats, "lines");
    let our_functions = num(&cold_stats, "printed");

    println!();
    println!(
        "{:<28} {:>10} {:>10} {:>10} {:>11} {:>12} {:>10}",
        "", "files", "lines", "functions", "wall (s)", "lines/s", "peak RSS"
    );
    let row = |name: &str, files: f64, lines: f64, functions: f64, m: &Measured| {
        let secs = m.wall.as_secs_f64();
        println!(
            "{:<28} {:>10} {:>10} {:>10} {:>11.3} {:>12.0} {:>7.1} MB   ({:.0} files/s, cpu {:.2} s)",
            name,
            files,
            lines,
            functions,
            secs,
            lines / secs,
            m.max_rss_kb as f64 / 1024.0,
            files / secs,
            m.cpu.as_secs_f64()
        );
    };
    row(
        "python ast (reference)",
        ast_files,
        ast_lines,
        ast_functions,
        &ast,
    );
    row(
        "trajforge, no cache",
        our_files,
        our_lines,
        our_functions,
        &cold,
    );
    row(
        "trajforge, warm cache",
        our_files,
        our_lines,
        num(&warm_stats, "printed"),
        &warm,
    );
    println!();
    let ratio = ast.wall.as_secs_f64() / cold.wall.as_secs_f64();
    let warm_ratio = cold.wall.as_secs_f64() / warm.wall.as_secs_f64();
    let peak_mb = cold.max_rss_kb.max(warm.max_rss_kb) as f64 / 1024.0;
    println!(
        "speed ratio, trajforge vs ast:        {ratio:.2}x   (target >= 3x)  {}",
        verdict(ratio >= 3.0)
    );
    println!(
        "peak memory, trajforge:               {peak_mb:.1} MB (target < 300 MB)  {}",
        verdict(peak_mb < 300.0)
    );
    println!("warm cache vs no cache:               {warm_ratio:.1}x faster");
    if (our_functions - ast_functions).abs() > 0.5 {
        println!(
            "note: function counts differ ({our_functions} vs {ast_functions}); files that `ast` cannot parse are skipped by it, while tree-sitter recovers their functions"
        );
    }
    Ok(())
}

fn verdict(ok: bool) -> &'static str {
    if ok { "ok" } else { "MISSED" }
}

fn cores() -> usize {
    std::thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(1)
}

fn num(value: &serde_json::Value, key: &str) -> f64 {
    value
        .get(key)
        .and_then(serde_json::Value::as_f64)
        .unwrap_or(0.0)
}

fn last_json(stderr: &str) -> Result<serde_json::Value, String> {
    stderr
        .lines()
        .rev()
        .find_map(|l| {
            serde_json::from_str::<serde_json::Value>(l.trim())
                .ok()
                .filter(|v| v.is_object())
        })
        .ok_or_else(|| format!("no JSON summary in the program's stderr:\n{stderr}"))
}

fn median(runs: &[Measured]) -> Measured {
    let mut sorted = runs.to_vec();
    sorted.sort_by_key(|m| m.wall);
    sorted[sorted.len() / 2].clone()
}

/// Run a program to completion with stdout discarded, measuring its own wall time, CPU time
/// and peak resident memory.
fn run_child(program: &Path, args: &[String]) -> Result<Measured, String> {
    let stderr_file = tempfile_path();
    let stderr = std::fs::File::create(&stderr_file).map_err(|e| format!("temp file: {e}"))?;
    let started = Instant::now();
    let child = Command::new(program)
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(stderr)
        .spawn()
        .map_err(|e| format!("cannot start {}: {e}", program.display()))?;
    let reaped = reap(child);
    let wall = started.elapsed();
    let stderr = std::fs::read_to_string(&stderr_file).unwrap_or_default();
    let _ = std::fs::remove_file(&stderr_file);
    let Some(r) = reaped else {
        return Err(format!("wait4 failed for {}", program.display()));
    };
    if !r.exited_ok() {
        return Err(format!(
            "{} {} failed:\n{stderr}",
            program.display(),
            args.join(" ")
        ));
    }
    Ok(Measured {
        wall,
        cpu: r.cpu,
        max_rss_kb: r.max_rss_kb,
        stderr,
    })
}

/// How a child process ended, with its resource use.
pub(crate) struct Reaped {
    /// The wait status.
    pub status: libc::c_int,
    /// User + system CPU time.
    pub cpu: Duration,
    /// Peak resident set, in KiB.
    pub max_rss_kb: u64,
}

impl Reaped {
    /// Exited with status 0.
    pub fn exited_ok(&self) -> bool {
        libc::WIFEXITED(self.status) && libc::WEXITSTATUS(self.status) == 0
    }
}

/// Wait for `child` with wait4, which also gives its CPU time and peak memory; `None` when
/// the wait fails.
pub(crate) fn reap(child: std::process::Child) -> Option<Reaped> {
    let pid = child.id() as libc::pid_t;
    let mut status: libc::c_int = 0;
    // SAFETY: all-zero is a valid `rusage`; wait4 fills it in.
    let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
    // SAFETY: `pid` is our own unreaped child; the pointers are to live locals. `child` is
    // not waited on through std afterwards, so the pid is reaped exactly once.
    let rc = unsafe { libc::wait4(pid, &mut status, 0, &mut usage) };
    drop(child);
    let tv = |t: libc::timeval| {
        Duration::from_secs(t.tv_sec as u64) + Duration::from_micros(t.tv_usec as u64)
    };
    (rc == pid).then(|| Reaped {
        status,
        cpu: tv(usage.ru_utime) + tv(usage.ru_stime),
        max_rss_kb: usage.ru_maxrss as u64,
    })
}

fn tempfile_path() -> PathBuf {
    use std::sync::atomic::{AtomicUsize, Ordering};
    static N: AtomicUsize = AtomicUsize::new(0);
    std::env::temp_dir().join(format!(
        "trajforge-bench-{}-{}.stderr",
        std::process::id(),
        N.fetch_add(1, Ordering::Relaxed)
    ))
}
