//! `trajforge-bench agent`: what the agent runtime costs, measured in one run.
//!
//! 1. Orchestrator overhead per step against an instant fake teacher, on a real workspace.
//! 2. Many concurrent episodes in one process: peak RSS, peak threads, wall time.
//! 3. Workspace creation on a large repository: time and new disk.
//! 4. mini-swe-agent against the same fake teacher on the same scripted episode: CPU per step.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use serde_json::{Value, json};
use trajforge_agent::{
    BoxFuture, EnvOutcome, ExitStatus, LoopConfig, Observation, Trajectory, run_episode,
};
use trajforge_repo_env::RepoEnvironment;
use trajforge_sandbox::{Environment, EnvironmentOptions, Workspace};
use trajforge_teacher::{OpenAiTeacher, RequestLimiter, TeacherConfig, ToolCall, ToolSpec};
use trajforge_testkit::{FakeServer, Reply, Script, ServerOptions, Step as FakeStep};

/// The task every scripted episode works on.
const TASK: &str = "There may be a problem with chunked in more_itertools/more.py. Investigate.";
/// The file the scripted `view` steps show (sample repository).
const VIEW_FILE: &str = "more_itertools/more.py";
/// Where the workspace appears inside the sandbox.
const INSIDE: &str = "/workspace";
/// Bash steps of each concurrent episode before its two submits.
const CONCURRENT_BASH_STEPS: usize = 8;
/// "Far below one thread per episode": the most threads allowed for the concurrent run.
const MAX_THREADS: usize = 100;

/// Options of `trajforge-bench agent`.
#[derive(Debug, clap::Args)]
pub(crate) struct AgentArgs {
    /// Cheap steps (`true`, `echo x`, an editor view) per scripted episode; two submits follow.
    #[arg(long, default_value_t = 50, value_name = "N")]
    steps: usize,
    /// Episodes whose steps are pooled for the overhead figures (after one warm-up episode).
    #[arg(long, default_value_t = 3, value_name = "N")]
    overhead_episodes: usize,
    /// Episodes run at once in one process.
    #[arg(long, default_value_t = 500, value_name = "N")]
    concurrent: usize,
    /// Cap on tokio's blocking threads; each running sandbox command (and session start) holds one.
    #[arg(long, default_value_t = 32, value_name = "N")]
    blocking_threads: usize,
    /// Teacher requests in flight at most in the concurrent run (shared limiter).
    #[arg(long, default_value_t = 64, value_name = "N")]
    max_requests: usize,
    /// Large repository for workspace creation [default: Django's sdist under
    /// $TRAJFORGE_TEST_DATA or .cache/test-data, from scripts/fetch-test-data.sh --bench].
    #[arg(long, value_name = "DIR")]
    large_repo: Option<PathBuf>,
    /// Workspace creations timed on the large repository.
    #[arg(long, default_value_t = 20, value_name = "N")]
    workspace_runs: usize,
    /// mini-swe-agent's `mini` executable [default: .cache/bench-venv/bin/mini of this checkout].
    #[arg(long, value_name = "FILE")]
    mini: Option<PathBuf>,
    /// The trajforge binary [default: next to this one].
    #[arg(long, value_name = "FILE")]
    trajforge: Option<PathBuf>,
    /// Runs of each program (short and long episode) in the comparison; medians are reported.
    #[arg(long, default_value_t = 3, value_name = "N")]
    runs: usize,
    /// Folder for repositories and workspaces; the sandbox user must be able to reach it.
    #[arg(long, default_value = "/var/tmp", value_name = "DIR")]
    work_root: PathBuf,
    /// Keep the work folder (repositories, workspaces, logs of the child processes).
    #[arg(long)]
    keep: bool,
    /// Run only these parts.
    #[arg(long, value_enum, value_delimiter = ',')]
    only: Vec<Part>,
}

/// The parts of the benchmark.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
enum Part {
    /// Orchestrator overhead per step.
    Overhead,
    /// Many concurrent episodes in one process.
    Concurrent,
    /// Workspace creation on a large repository.
    Workspace,
    /// mini-swe-agent comparison.
    Mini,
}

/// One line of the summary table.
struct Row {
    what: String,
    target: String,
    measured: String,
    /// `None` for figures without a target.
    ok: Option<bool>,
}

impl Row {
    fn new(what: &str, target: &str, measured: String, ok: Option<bool>) -> Self {
        Row {
            what: what.to_string(),
            target: target.to_string(),
            measured,
            ok,
        }
    }
}

/// Run the benchmark.
pub(crate) fn run(args: AgentArgs) -> Result<(), String> {
    raise_fd_limit();
    let want = |p: Part| args.only.is_empty() || args.only.contains(&p);
    let root = tempfile::Builder::new()
        .prefix("trajforge-bench-agent-")
        .tempdir_in(&args.work_root)
        .map_err(|e| format!("{}: cannot create a folder: {e}", args.work_root.display()))?;
    chmod_755(root.path())?;
    let sandbox_note = if is_root() {
        "sandbox commands run as uid 65534"
    } else {
        "sandbox commands run as the caller"
    };
    println!("agent runtime benchmark");
    println!(
        "  this machine: {} cores; bubblewrap sandbox, {sandbox_note}; work folder {}",
        crate::cores(),
        root.path().display()
    );

    let mut rows: Vec<Row> = Vec::new();
    let needs_sample = want(Part::Overhead) || want(Part::Concurrent) || want(Part::Mini);
    let sample = if needs_sample {
        Some(sample_repo(root.path())?)
    } else {
        None
    };
    let sample_env = match &sample {
        Some(repo) if want(Part::Overhead) || want(Part::Concurrent) => {
            let options = EnvironmentOptions::new(root.path().join("work-sample"));
            Some(
                Environment::prepare(repo, None, &options)
                    .map_err(|e| format!("preparing the sample repository: {e}"))?,
            )
        }
        _ => None,
    };

    let mut part = |name: &str, result: Result<Vec<Row>, String>| match result {
        Ok(r) => rows.extend(r),
        Err(e) => {
            println!("  error: {e}");
            rows.push(Row::new(name, "runs", format!("failed: {e}"), Some(false)));
        }
    };
    if let (true, Some(env)) = (want(Part::Overhead), &sample_env) {
        part("overhead", overhead(&args, env));
    }
    if let (true, Some(env)) = (want(Part::Concurrent), &sample_env) {
        part("concurrent episodes", concurrent(&args, env));
    }
    if want(Part::Workspace) {
        part("workspace creation", workspaces(&args, root.path()));
    }
    if let (true, Some(repo)) = (want(Part::Mini), &sample) {
        part(
            "mini-swe-agent comparison",
            compare_mini(&args, root.path(), repo),
        );
    }
    drop(sample_env);

    println!();
    println!("summary");
    println!(
        "  {:<44} {:<26} {:<30} verdict",
        "measure", "target", "measured"
    );
    for row in &rows {
        let verdict = match row.ok {
            Some(ok) => crate::verdict(ok),
            None => "info",
        };
        println!(
            "  {:<44} {:<26} {:<30} {verdict}",
            row.what, row.target, row.measured
        );
    }
    if args.keep {
        println!("  work folder kept: {}", root.keep().display());
    } else {
        let _ = root.close();
    }
    Ok(())
}

// ---------------------------------------------------------------------------------------
// 1. Overhead per step

/// Wraps an environment to time each tool call as the loop sees it.
struct Timed {
    inner: RepoEnvironment,
    walls: Vec<Duration>,
}

impl trajforge_agent::Environment for Timed {
    fn tools(&self) -> Vec<ToolSpec> {
        self.inner.tools()
    }

    fn call<'a>(&'a mut self, call: &'a ToolCall) -> BoxFuture<'a, Observation> {
        Box::pin(async move {
            let started = Instant::now();
            let obs = self.inner.call(call).await;
            self.walls.push(started.elapsed());
            obs
        })
    }

    fn finish(&mut self) -> BoxFuture<'_, EnvOutcome> {
        self.inner.finish()
    }
}

fn overhead(args: &AgentArgs, env: &Environment) -> Result<Vec<Row>, String> {
    let steps = args.steps;
    let episodes = args.overhead_episodes.max(1);
    println!();
    println!(
        "1. orchestrator overhead per step: instant fake teacher (latency 0), sample repository, \
         {episodes} episodes of {steps} cheap steps + 2 submits (after 1 warm-up episode)"
    );
    let rt = runtime(args.blocking_threads)?;
    let (pooled, session_starts) = rt.block_on(async {
        let script = Script::handler(move |body| ours_step(assistant_turns(body), steps));
        let server = FakeServer::try_start(script, ServerOptions::instant(Duration::ZERO, 16))
            .await
            .map_err(|e| format!("fake teacher: {e}"))?;
        let teacher = teacher(&server.url(), "fake", 16)?;
        let config = LoopConfig::default();
        let mut pooled: Vec<(Step4, String)> = Vec::new();
        let mut session_starts = Vec::new();
        for episode in 0..=episodes {
            let e = env.clone();
            let (workspace, session, start) = tokio::task::spawn_blocking(move || {
                let ws = e.create_workspace().map_err(|e| e.to_string())?;
                let t = Instant::now();
                let session = ws.session().map_err(|e| e.to_string())?;
                Ok::<_, String>((ws, session, t.elapsed()))
            })
            .await
            .map_err(|e| e.to_string())??;
            let mut timed = Timed {
                inner: RepoEnvironment::new(session, INSIDE, None),
                walls: Vec::new(),
            };
            let trajectory = run_episode(&teacher, &mut timed, TASK, &config, &mut |_| {}).await;
            let walls = std::mem::take(&mut timed.walls);
            dispose(timed, workspace).await;
            check_episode(&trajectory, steps + 2)?;
            if episode == 0 {
                continue;
            }
            session_starts.push(start);
            for (step, wall) in trajectory.steps.iter().zip(walls) {
                let Some(tool) = step.tools.first() else {
                    continue;
                };
                pooled.push((
                    Step4 {
                        ours: step.overhead,
                        model: step.model_time,
                        command: tool.observation.duration,
                        dispatch: wall.saturating_sub(tool.observation.duration),
                    },
                    step_label(&tool.tool, &tool.arguments),
                ));
            }
        }
        Ok::<_, String>((pooled, session_starts))
    })?;
    drop(rt);

    let col =
        |f: fn(&Step4) -> Duration| -> Vec<Duration> { pooled.iter().map(|(s, _)| f(s)).collect() };
    let a = col(|s| s.ours);
    let b = col(|s| s.model);
    let c = col(|s| s.command);
    let d = col(|s| s.dispatch);
    let ab = col(|s| s.ours + s.model);
    println!("  {} steps measured", pooled.len());
    println!("  {:<60} {:>10} {:>10}", "per step", "median", "p90");
    let line = |name: &str, v: &[Duration]| {
        println!(
            "  {:<60} {:>10} {:>10}",
            name,
            ms(quantile(v, 0.5)),
            ms(quantile(v, 0.9))
        );
    };
    line("(a) our overhead in the loop (Step::overhead)", &a);
    line(
        "(b) model round trip through our HTTP client (model_time)",
        &b,
    );
    line("(a)+(b)", &ab);
    line("(c) command time (Observation::duration)", &c);
    line(
        "(d) tool dispatch outside the command (env.call wall - (c))",
        &d,
    );
    let mut by_kind: BTreeMap<&str, Vec<Duration>> = BTreeMap::new();
    for (s, label) in &pooled {
        by_kind.entry(label.as_str()).or_default().push(s.command);
    }
    for (label, v) in &by_kind {
        line(&format!("    (c) for {label} ({} steps)", v.len()), v);
    }
    println!(
        "  (c) for bash is the sandboxed persistent shell's round trip; for the editor it is the \
         whole call (3 shell round trips for a view)"
    );
    println!(
        "  session start (bubblewrap + overlay + bash ready): median {}",
        ms(quantile(&session_starts, 0.5))
    );
    let median_ab = quantile(&ab, 0.5);
    Ok(vec![
        Row::new(
            "overhead per step (a)+(b), median",
            "< 2 ms",
            ms(median_ab),
            Some(median_ab < Duration::from_millis(2)),
        ),
        Row::new(
            "overhead per step (a)+(b), p90",
            "-",
            ms(quantile(&ab, 0.9)),
            None,
        ),
        Row::new(
            "command time per step (c), median",
            "-",
            ms(quantile(&c, 0.5)),
            None,
        ),
    ])
}

/// The per-step figures of the overhead run.
struct Step4 {
    ours: Duration,
    model: Duration,
    command: Duration,
    dispatch: Duration,
}

fn step_label(tool: &str, arguments: &str) -> String {
    let args: Value = serde_json::from_str(arguments).unwrap_or(Value::Null);
    match tool {
        "bash" => format!("bash `{}`", args["command"].as_str().unwrap_or("?")),
        "str_replace_editor" => format!("editor {}", args["command"].as_str().unwrap_or("?")),
        other => other.to_string(),
    }
}

// ---------------------------------------------------------------------------------------
// 2. Concurrent episodes

fn concurrent(args: &AgentArgs, env: &Environment) -> Result<Vec<Row>, String> {
    let n = args.concurrent.max(1);
    println!();
    println!(
        "2. {n} concurrent episodes in one process: instant fake teacher, each episode in its own \
         workspace and sandboxed shell, {CONCURRENT_BASH_STEPS} bash steps + 2 submits; tokio with 2 \
         workers and at most {} blocking threads, {} teacher requests in flight",
        args.blocking_threads, args.max_requests
    );
    // Peak RSS of this part only (VmHWM is otherwise the whole process's peak so far).
    let reset = std::fs::write("/proc/self/clear_refs", "5").is_ok();
    let baseline = read_status();
    let sampler = Sampler::start();
    let started = Instant::now();
    let rt = runtime(args.blocking_threads)?;
    let max_requests = args.max_requests;
    let outcome = rt.block_on(async {
        let script = Script::handler(|body| concurrent_step(assistant_turns(body)));
        let server =
            FakeServer::try_start(script, ServerOptions::instant(Duration::ZERO, max_requests))
                .await
                .map_err(|e| format!("fake teacher: {e}"))?;
        let teacher = Arc::new(teacher(&server.url(), "fake", max_requests)?);
        let config = Arc::new(LoopConfig::default());
        let mut set = tokio::task::JoinSet::new();
        for _ in 0..n {
            let env = env.clone();
            let teacher = Arc::clone(&teacher);
            let config = Arc::clone(&config);
            set.spawn(async move {
                let (workspace, session) = tokio::task::spawn_blocking(move || {
                    let ws = env.create_workspace().map_err(|e| e.to_string())?;
                    let session = ws.session().map_err(|e| e.to_string())?;
                    Ok::<_, String>((ws, session))
                })
                .await
                .map_err(|e| e.to_string())??;
                let mut repo_env = RepoEnvironment::new(session, INSIDE, None);
                let trajectory =
                    run_episode(&*teacher, &mut repo_env, TASK, &config, &mut |_| {}).await;
                dispose(repo_env, workspace).await;
                Ok::<_, String>(trajectory)
            });
        }
        let mut exits: BTreeMap<String, usize> = BTreeMap::new();
        let mut errors = Vec::new();
        let mut steps = 0usize;
        while let Some(joined) = set.join_next().await {
            match joined.map_err(|e| e.to_string()).and_then(|r| r) {
                Ok(t) => {
                    steps += t.steps.len();
                    *exits.entry(t.exit.label().to_string()).or_default() += 1;
                    if let Some(problem) = t.outcome.error {
                        errors.push(problem);
                    }
                }
                Err(e) => errors.push(e),
            }
        }
        Ok::<_, String>((exits, errors, steps, server.max_concurrency()))
    });
    drop(rt);
    let wall = started.elapsed();
    let peak = sampler.stop();
    let (exits, errors, steps, server_peak) = outcome?;
    let submitted = exits.get("submitted").copied().unwrap_or(0);
    let hwm_mb = peak.hwm_kb as f64 / 1024.0;
    println!(
        "  wall time {:.2} s for {n} episodes ({steps} steps, {:.0} steps/s); exits: {}",
        wall.as_secs_f64(),
        steps as f64 / wall.as_secs_f64(),
        exits
            .iter()
            .map(|(k, v)| format!("{k} {v}"))
            .collect::<Vec<_>>()
            .join(", ")
    );
    if !errors.is_empty() {
        println!(
            "  {} errors, first: {}",
            errors.len(),
            errors.first().map_or("", String::as_str)
        );
    }
    println!(
        "  this process: peak RSS (VmHWM{}) {hwm_mb:.1} MB (before: VmRSS {:.1} MB), peak \
         threads {} (before: {}), sampled every 2 ms",
        if reset { ", reset before the run" } else { "" },
        baseline.rss_kb as f64 / 1024.0,
        peak.threads,
        baseline.threads
    );
    println!(
        "  sandbox processes (children of this process): peak {} at once, their RSS summed {:.0} MB \
         (pages shared between processes counted in each); fake teacher peak requests at once: {server_peak}",
        peak.procs,
        peak.procs_rss_kb as f64 / 1024.0
    );
    println!(
        "  threads: 2 tokio workers + up to {} blocking threads (a running sandbox command holds \
         one while it waits on the shell's pipe) + the sandbox launcher + this sampler + main; \
         episodes beyond that wait for a blocking thread, none gets a thread of its own",
        args.blocking_threads
    );
    Ok(vec![
        Row::new(
            &format!("{n} episodes: all submitted"),
            &format!("{n}"),
            format!("{submitted}"),
            Some(submitted == n && errors.is_empty()),
        ),
        Row::new(
            &format!("{n} episodes: peak RSS of the process"),
            "< 1 GB",
            format!("{hwm_mb:.1} MB"),
            Some(peak.hwm_kb < 1024 * 1024),
        ),
        Row::new(
            &format!("{n} episodes: peak threads"),
            &format!("<= {MAX_THREADS} (no thread/episode)"),
            format!("{}", peak.threads),
            Some(peak.threads <= MAX_THREADS),
        ),
        Row::new(
            &format!("{n} episodes: wall time"),
            "-",
            format!("{:.2} s", wall.as_secs_f64()),
            None,
        ),
    ])
}

fn concurrent_step(turn: usize) -> FakeStep {
    let reply = Reply::new().content("Next command.");
    let reply = if turn < CONCURRENT_BASH_STEPS {
        let command = match turn % 4 {
            0 => "true",
            1 => "echo x",
            2 => "ls more_itertools",
            _ => "pwd",
        };
        reply.tool_call("bash", json!({ "command": command }))
    } else {
        reply.tool_call("submit", json!({}))
    };
    FakeStep::Reply(reply)
}

/// Peaks seen by the sampler.
#[derive(Debug, Default, Clone, Copy)]
struct Peak {
    threads: usize,
    hwm_kb: u64,
    rss_kb: u64,
    procs: usize,
    procs_rss_kb: u64,
}

/// Samples /proc/self/status every 2 ms (and this process's descendants every 200 ms) on a
/// thread of its own.
struct Sampler {
    stop: Arc<AtomicBool>,
    handle: std::thread::JoinHandle<Peak>,
}

impl Sampler {
    fn start() -> Self {
        let stop = Arc::new(AtomicBool::new(false));
        let flag = Arc::clone(&stop);
        let handle = std::thread::spawn(move || {
            let mut peak = Peak::default();
            let mut n = 0u64;
            loop {
                let done = flag.load(Ordering::Relaxed);
                let now = read_status();
                peak.threads = peak.threads.max(now.threads);
                peak.hwm_kb = peak.hwm_kb.max(now.hwm_kb);
                peak.rss_kb = peak.rss_kb.max(now.rss_kb);
                if n.is_multiple_of(100) || done {
                    let (procs, rss) = descendants();
                    peak.procs = peak.procs.max(procs);
                    peak.procs_rss_kb = peak.procs_rss_kb.max(rss);
                }
                if done {
                    return peak;
                }
                n += 1;
                std::thread::sleep(Duration::from_millis(2));
            }
        });
        Sampler { stop, handle }
    }

    fn stop(self) -> Peak {
        self.stop.store(true, Ordering::Relaxed);
        self.handle.join().unwrap_or_default()
    }
}

/// Figures from /proc/self/status.
#[derive(Debug, Default, Clone, Copy)]
struct Status {
    threads: usize,
    hwm_kb: u64,
    rss_kb: u64,
}

fn read_status() -> Status {
    let text = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    let mut s = Status::default();
    for line in text.lines() {
        let Some((key, value)) = line.split_once(':') else {
            continue;
        };
        let number = || {
            value
                .split_whitespace()
                .next()
                .and_then(|v| v.parse::<u64>().ok())
                .unwrap_or(0)
        };
        match key {
            "Threads" => s.threads = number() as usize,
            "VmHWM" => s.hwm_kb = number(),
            "VmRSS" => s.rss_kb = number(),
            _ => {}
        }
    }
    s
}

/// Number of live descendant processes of this process and the sum of their RSS (kB).
fn descendants() -> (usize, u64) {
    let me = std::process::id();
    let mut children: HashMap<u32, Vec<u32>> = HashMap::new();
    let Ok(entries) = std::fs::read_dir("/proc") else {
        return (0, 0);
    };
    for entry in entries.flatten() {
        let Some(pid) = entry
            .file_name()
            .to_str()
            .and_then(|s| s.parse::<u32>().ok())
        else {
            continue;
        };
        let Ok(stat) = std::fs::read_to_string(format!("/proc/{pid}/stat")) else {
            continue;
        };
        // The command name may hold spaces and parentheses: fields start after the last ')'.
        let Some(rest) = stat.rfind(')').map(|i| &stat[i + 1..]) else {
            continue;
        };
        if let Some(ppid) = rest
            .split_whitespace()
            .nth(1)
            .and_then(|p| p.parse::<u32>().ok())
        {
            children.entry(ppid).or_default().push(pid);
        }
    }
    let page_kb = 4u64;
    let mut count = 0;
    let mut rss = 0;
    let mut stack = vec![me];
    while let Some(pid) = stack.pop() {
        for &child in children.get(&pid).map_or(&[][..], Vec::as_slice) {
            count += 1;
            if let Ok(statm) = std::fs::read_to_string(format!("/proc/{child}/statm")) {
                rss += statm
                    .split_whitespace()
                    .nth(1)
                    .and_then(|v| v.parse::<u64>().ok())
                    .unwrap_or(0)
                    * page_kb;
            }
            stack.push(child);
        }
    }
    (count, rss)
}

// ---------------------------------------------------------------------------------------
// 3. Workspace creation on a large repository

fn workspaces(args: &AgentArgs, root: &Path) -> Result<Vec<Row>, String> {
    let source = match &args.large_repo {
        Some(p) => p.clone(),
        None => default_large_repo()?,
    };
    println!();
    println!(
        "3. workspace creation on a large repository: {}",
        source.display()
    );
    let repo = root.join("large-repo");
    let t = Instant::now();
    run_ok(Command::new("cp").arg("-a").arg(&source).arg(&repo))?;
    git_commit_all(&repo)?;
    let made = t.elapsed();
    let (files, lines, py_lines) = count_lines(&repo)?;
    println!(
        "  {files} tracked files, {lines} lines ({py_lines} of them in .py files); copied and \
         committed as a git repository in {:.1} s (once)",
        made.as_secs_f64()
    );
    let options = EnvironmentOptions::new(root.join("work-large"));
    let t = Instant::now();
    let env = Environment::prepare(&repo, None, &options)
        .map_err(|e| format!("preparing {}: {e}", repo.display()))?;
    println!(
        "  Environment::prepare (one-commit snapshot shared by every episode, once per \
         repository): {:.2} s",
        t.elapsed().as_secs_f64()
    );

    let runs = args.workspace_runs.max(1);
    let mut created: Vec<Workspace> = Vec::new();
    let mut times = Vec::new();
    for _ in 0..runs {
        let t = Instant::now();
        let ws = env.create_workspace().map_err(|e| e.to_string())?;
        times.push(t.elapsed());
        created.push(ws);
    }
    let t = Instant::now();
    let mut session = created[0].session().map_err(|e| e.to_string())?;
    let first_start = t.elapsed();
    let disk_started = disk_kb(created[0].path());
    let status = session
        .run("git status --short | wc -l", None)
        .map_err(|e| e.to_string())?;
    let t = Instant::now();
    let patch = session.diff().map_err(|e| e.to_string())?;
    let diff_time = t.elapsed();
    let disk_used = disk_kb(created[0].path());
    let biggest = largest_files(&created[0].upper_dir(), 3);
    drop(session);
    let mut later_starts = Vec::new();
    for ws in created.iter().skip(1).take(5) {
        let t = Instant::now();
        let s = ws.session().map_err(|e| e.to_string())?;
        later_starts.push(t.elapsed());
        drop(s);
    }
    let t = Instant::now();
    let count = created.len();
    drop(created);
    let removal = t.elapsed();
    drop(env);

    let create_median = quantile(&times, 0.5);
    println!(
        "  create_workspace(): median {} of {runs}, max {}",
        ms(create_median),
        ms(quantile(&times, 1.0))
    );
    println!(
        "  first session start (bubblewrap + overlay mount + bash ready): {}; next {} starts: \
         median {}",
        ms(first_start),
        later_starts.len(),
        ms(quantile(&later_starts, 0.5))
    );
    println!(
        "  new disk of the episode folder: {} after the session started, {} after `git status` \
         ({} changed paths) and the submit diff ({} bytes, {})",
        kb(disk_started),
        kb(disk_used),
        status.output.trim(),
        patch.len(),
        ms(diff_time)
    );
    println!(
        "  largest new files in the workspace: {}",
        biggest
            .iter()
            .map(|(p, k)| format!("{p} ({})", kb(*k)))
            .collect::<Vec<_>>()
            .join(", ")
    );
    println!("  removing {count} workspaces: {}", ms(removal));
    let start_ok = first_start < Duration::from_millis(50);
    Ok(vec![
        Row::new(
            &format!("workspace creation, {}k-line .py repo", py_lines / 1000),
            "< 50 ms",
            ms(create_median),
            Some(create_median < Duration::from_millis(50)),
        ),
        Row::new(
            "first session start on it",
            "< 50 ms",
            ms(first_start),
            Some(start_ok),
        ),
        Row::new(
            "new disk per workspace (after status+diff)",
            "< 10 MB",
            kb(disk_used),
            Some(disk_used < 10 * 1024),
        ),
    ])
}

fn default_large_repo() -> Result<PathBuf, String> {
    let data = std::env::var_os("TRAJFORGE_TEST_DATA")
        .map(PathBuf::from)
        .unwrap_or_else(|| checkout().join(".cache/test-data"));
    let src = data.join("src");
    let found = std::fs::read_dir(&src)
        .ok()
        .into_iter()
        .flatten()
        .flatten()
        .map(|e| e.path())
        .filter(|p| {
            p.file_name()
                .and_then(|n| n.to_str())
                .is_some_and(|n| n.starts_with("django-"))
        })
        .max();
    found.ok_or_else(|| {
        format!(
            "no django-* under {}: run scripts/fetch-test-data.sh --bench, or pass --large-repo",
            src.display()
        )
    })
}

/// Files tracked, their total line count, and the lines of Python files.
fn count_lines(repo: &Path) -> Result<(usize, usize, usize), String> {
    let out = Command::new("git")
        .arg("-C")
        .arg(repo)
        .args(["ls-files", "-z"])
        .output()
        .map_err(|e| format!("git: {e}"))?;
    let mut files = 0;
    let mut lines = 0;
    let mut py_lines = 0;
    for name in out.stdout.split(|&b| b == 0).filter(|n| !n.is_empty()) {
        let path = repo.join(String::from_utf8_lossy(name).as_ref());
        if let Ok(bytes) = std::fs::read(&path) {
            files += 1;
            let n = bytes.iter().filter(|&&b| b == b'\n').count();
            lines += n;
            if name.ends_with(b".py") {
                py_lines += n;
            }
        }
    }
    Ok((files, lines, py_lines))
}

/// The `n` files below `dir` using the most disk, with their kB.
fn largest_files(dir: &Path, n: usize) -> Vec<(String, u64)> {
    fn walk(base: &Path, path: &Path, out: &mut Vec<(String, u64)>) {
        let Ok(entries) = std::fs::read_dir(path) else {
            return;
        };
        for entry in entries.flatten() {
            let p = entry.path();
            let Ok(meta) = std::fs::symlink_metadata(&p) else {
                continue;
            };
            if meta.is_dir() {
                walk(base, &p, out);
            } else {
                let rel = p.strip_prefix(base).unwrap_or(&p).display().to_string();
                out.push((rel, meta.blocks() / 2));
            }
        }
    }
    let mut out = Vec::new();
    walk(dir, dir, &mut out);
    out.sort_by_key(|b| std::cmp::Reverse(b.1));
    out.truncate(n);
    out
}

/// Disk blocks used below `path`, in kB (hard links counted once).
fn disk_kb(path: &Path) -> u64 {
    fn walk(path: &Path, seen: &mut HashSet<(u64, u64)>) -> u64 {
        let Ok(meta) = std::fs::symlink_metadata(path) else {
            return 0;
        };
        let mut total = 0;
        if seen.insert((meta.dev(), meta.ino())) {
            total += meta.blocks() / 2;
        }
        if meta.is_dir()
            && let Ok(entries) = std::fs::read_dir(path)
        {
            for entry in entries.flatten() {
                total += walk(&entry.path(), seen);
            }
        }
        total
    }
    walk(path, &mut HashSet::new())
}

// ---------------------------------------------------------------------------------------
// 4. mini-swe-agent comparison

fn compare_mini(args: &AgentArgs, root: &Path, repo: &Path) -> Result<Vec<Row>, String> {
    let steps = args.steps;
    let runs = args.runs.max(1);
    println!();
    println!(
        "4. CPU per step against mini-swe-agent: the same fake teacher and task on copies of the \
         sample repository, {steps} cheap steps + 2 calls to submit (trajforge: submit twice; \
         mini-swe-agent: the diff, then its submit command), each program a child process, CPU from \
         wait4 (user + sys, children included), median of {runs} runs"
    );
    let mini = match &args.mini {
        Some(p) => p.clone(),
        None => checkout().join(".cache/bench-venv/bin/mini"),
    };
    if !mini.is_file() {
        return Err(format!(
            "{} not found: scripts/bench-agent.sh installs mini-swe-agent 2.4.6 there, or pass --mini",
            mini.display()
        ));
    }
    let trajforge = match &args.trajforge {
        Some(p) => p.clone(),
        None => crate::sibling_binary("trajforge")?,
    };
    // mini-swe-agent changes the repository it works in (git add -A): give it its own copy.
    let mini_repo = root.join("mini-repo");
    run_ok(Command::new("cp").arg("-a").arg(repo).arg(&mini_repo))?;
    let mswea_dir = root.join("mswea-config");
    std::fs::create_dir_all(&mswea_dir).map_err(|e| e.to_string())?;
    let compare = root.join("compare");
    std::fs::create_dir_all(&compare).map_err(|e| e.to_string())?;
    chmod_755(&compare)?;

    let rt = runtime(args.blocking_threads)?;
    let results = rt.block_on(async {
        let script = Script::handler(compare_step);
        let server = FakeServer::try_start(script, ServerOptions::instant(Duration::ZERO, 8))
            .await
            .map_err(|e| format!("fake teacher: {e}"))?;
        let url = server.url();
        let mut ours: BTreeMap<usize, Vec<Child>> = BTreeMap::new();
        let mut theirs: BTreeMap<usize, Vec<Child>> = BTreeMap::new();
        for run in 0..runs {
            for n in [0, steps] {
                let tag = format!("{run}-{n}");
                let model = format!("cheap-{n}");
                // trajforge run
                let out = compare.join(format!("ours-{tag}.json"));
                let mut cmd = Command::new(&trajforge);
                cmd.arg("run")
                    .arg("--repo")
                    .arg(repo)
                    .args(["--task", TASK, "--teacher", &url, "--model", &model])
                    .arg("--work-dir")
                    .arg(compare.join(format!("ours-work-{tag}")))
                    .arg("--out")
                    .arg(&out)
                    .args(["--retries", "0"])
                    .env_remove("OPENAI_API_KEY")
                    .env_remove("TRAJFORGE_API_KEY");
                let mut child = measure(cmd, &compare.join(format!("ours-{tag}.log"))).await?;
                let traj: Value = read_json(&out)?;
                child.calls = traj["steps"].as_array().map_or(0, Vec::len);
                let exit = traj["exit"]["status"].as_str().unwrap_or("?");
                check_compared_episode(
                    "trajforge run",
                    child.calls,
                    exit,
                    "submitted",
                    n + 2,
                    &compare,
                )?;
                ours.entry(n).or_default().push(child);

                // mini-swe-agent
                let out = compare.join(format!("mini-{tag}.traj.json"));
                let mut cmd = Command::new(&mini);
                cmd.args(["-y", "--exit-immediately", "-m"])
                    .arg(format!("openai/{model}"))
                    .args(["-c", "mini.yaml", "-c"])
                    .arg(format!("model.model_kwargs.api_base={url}"))
                    .arg("-c")
                    .arg(format!("environment.cwd={}", mini_repo.display()))
                    .args(["-t", TASK, "-o"])
                    .arg(&out)
                    .current_dir(&mini_repo)
                    .env("LITELLM_LOCAL_MODEL_COST_MAP", "True")
                    .env("MSWEA_CONFIGURED", "true")
                    .env("MSWEA_COST_TRACKING", "ignore_errors")
                    .env("MSWEA_GLOBAL_CONFIG_DIR", &mswea_dir)
                    .env("OPENAI_API_KEY", "sk-fake-benchmark-key");
                let mut child = measure(cmd, &compare.join(format!("mini-{tag}.log"))).await?;
                let traj: Value = read_json(&out)?;
                child.calls = traj["info"]["model_stats"]["api_calls"]
                    .as_u64()
                    .unwrap_or(0) as usize;
                let exit = traj["info"]["exit_status"].as_str().unwrap_or("?");
                check_compared_episode(
                    "mini-swe-agent",
                    child.calls,
                    exit,
                    "Submitted",
                    n + 2,
                    &compare,
                )?;
                theirs.entry(n).or_default().push(child);
            }
        }
        Ok::<_, String>((ours, theirs))
    });
    drop(rt);
    let (ours, theirs) = results?;

    let summarize = |name: &str, by_n: &BTreeMap<usize, Vec<Child>>| -> Option<(f64, f64)> {
        let short = median_child(by_n.get(&0)?);
        let long = median_child(by_n.get(&steps)?);
        let per_step = long.cpu.as_secs_f64() / long.calls as f64;
        let extra_calls = long.calls.saturating_sub(short.calls).max(1) as f64;
        let marginal = (long.cpu.as_secs_f64() - short.cpu.as_secs_f64()).max(0.0) / extra_calls;
        println!(
            "  {:<24} {:>6} {:>9.2} {:>9.3} {:>9.3} {:>12.2} {:>12.2} {:>9.1}",
            name,
            long.calls,
            long.wall.as_secs_f64(),
            long.cpu.as_secs_f64(),
            short.cpu.as_secs_f64(),
            per_step * 1000.0,
            marginal * 1000.0,
            long.max_rss_kb as f64 / 1024.0
        );
        Some((per_step, marginal))
    };
    println!(
        "  {:<24} {:>6} {:>9} {:>9} {:>9} {:>12} {:>12} {:>9}",
        "", "calls", "wall s", "CPU s", "start s", "CPU/step ms", "marginal ms", "RSS MB"
    );
    let mini_fig = summarize("mini-swe-agent 2.4.6", &theirs);
    let ours_fig = summarize("trajforge run", &ours);
    println!(
        "  start s: CPU of a 2-call episode (start-up, repository set-up, submit); marginal: \
         (CPU of the long run - start s) / extra calls"
    );
    println!(
        "  note: mini-swe-agent runs every command on the host with subprocess (a new /bin/sh \
         per command, no sandbox, no isolation); trajforge's cost includes the bubblewrap sandbox \
         (user/pid/mount namespaces, overlay workspace, persistent shell) and, once per episode, \
         snapshotting the repository"
    );
    let (Some((mini_step, mini_marginal)), Some((our_step, our_marginal))) = (mini_fig, ours_fig)
    else {
        return Err("missing runs".into());
    };
    let ratio = mini_step / our_step;
    let marginal_ratio = mini_marginal / our_marginal.max(1e-9);
    println!(
        "  CPU per step, mini-swe-agent / trajforge: {ratio:.2}x overall, {marginal_ratio:.2}x \
         marginal"
    );
    Ok(vec![
        Row::new(
            "CPU/step mini-swe-agent / trajforge",
            "ratio",
            format!(
                "{ratio:.2}x ({:.1} vs {:.1} ms)",
                mini_step * 1000.0,
                our_step * 1000.0
            ),
            None,
        ),
        Row::new(
            "  same, marginal (start-up excluded)",
            "ratio",
            format!(
                "{marginal_ratio:.2}x ({:.1} vs {:.1} ms)",
                mini_marginal * 1000.0,
                our_marginal * 1000.0
            ),
            None,
        ),
    ])
}

/// The scripted episode for the comparison: the number of cheap steps is the number at the end
/// of the model name (`cheap-50`); a request offering `str_replace_editor` comes from trajforge.
/// Fails a comparison episode of `who` that made other than `want_calls` model calls or
/// ended other than `want_exit`; its log is in `dir`.
fn check_compared_episode(
    who: &str,
    calls: usize,
    exit: &str,
    want_exit: &str,
    want_calls: usize,
    dir: &Path,
) -> Result<(), String> {
    if exit != want_exit || calls != want_calls {
        return Err(format!(
            "{who}: {calls} model calls, exit {exit} (expected {want_calls} and {want_exit}); log in {}",
            dir.display()
        ));
    }
    Ok(())
}

fn compare_step(body: &Value) -> FakeStep {
    let steps = body["model"]
        .as_str()
        .and_then(|m| m.rsplit('-').next())
        .and_then(|n| n.parse::<usize>().ok())
        .unwrap_or(0);
    let turn = assistant_turns(body);
    let ours = body["tools"].as_array().is_some_and(|tools| {
        tools
            .iter()
            .any(|t| t["function"]["name"] == "str_replace_editor")
    });
    if ours {
        return ours_step(turn, steps);
    }
    let command = if turn < steps {
        match turn % 3 {
            0 => "true".to_string(),
            1 => "echo x".to_string(),
            _ => format!("nl -ba {VIEW_FILE} | sed -n '1,40p'"),
        }
    } else if turn == steps {
        // What trajforge's first submit does: show the change.
        "git add -A && git diff --cached".to_string()
    } else {
        "echo COMPLETE_TASK_AND_SUBMIT_FINAL_OUTPUT".to_string()
    };
    FakeStep::Reply(
        Reply::new()
            .content("Next command.")
            .tool_call("bash", json!({ "command": command })),
    )
}

/// trajforge's cheap episode: `true`, `echo x`, an editor view, in turn; then submit twice.
fn ours_step(turn: usize, steps: usize) -> FakeStep {
    let reply = Reply::new().content("Next command.");
    let reply = if turn >= steps {
        reply.tool_call("submit", json!({}))
    } else {
        match turn % 3 {
            0 => reply.tool_call("bash", json!({"command": "true"})),
            1 => reply.tool_call("bash", json!({"command": "echo x"})),
            _ => reply.tool_call(
                "str_replace_editor",
                json!({"command": "view", "path": format!("{INSIDE}/{VIEW_FILE}"), "view_range": [1, 40]}),
            ),
        }
    };
    FakeStep::Reply(reply)
}

/// Assistant turns so far in a chat-completions request.
fn assistant_turns(body: &Value) -> usize {
    body["messages"]
        .as_array()
        .map_or(0, |m| m.iter().filter(|m| m["role"] == "assistant").count())
}

/// What one child process cost.
#[derive(Debug, Clone)]
struct Child {
    wall: Duration,
    cpu: Duration,
    max_rss_kb: u64,
    calls: usize,
}

fn median_child(runs: &[Child]) -> Child {
    let mut sorted = runs.to_vec();
    sorted.sort_by_key(|c| c.cpu);
    sorted[sorted.len() / 2].clone()
}

/// Runs `cmd` to completion on a blocking thread (the fake teacher keeps serving), with
/// stdout and stderr going to `log`, and measures it with wait4.
async fn measure(mut cmd: Command, log: &Path) -> Result<Child, String> {
    let file = std::fs::File::create(log).map_err(|e| format!("{}: {e}", log.display()))?;
    let err = file.try_clone().map_err(|e| e.to_string())?;
    cmd.stdin(Stdio::null()).stdout(file).stderr(err);
    let log = log.to_path_buf();
    tokio::task::spawn_blocking(move || {
        let started = Instant::now();
        let child = cmd
            .spawn()
            .map_err(|e| format!("cannot start {:?}: {e}", cmd.get_program()))?;
        let reaped = crate::reap(child);
        let wall = started.elapsed();
        let Some(r) = reaped else {
            return Err(format!("wait4 failed for {:?}", cmd.get_program()));
        };
        let status = r.status;
        if !r.exited_ok() {
            let text = std::fs::read_to_string(&log).unwrap_or_default();
            let tail: String = text
                .lines()
                .rev()
                .take(15)
                .collect::<Vec<_>>()
                .into_iter()
                .rev()
                .collect::<Vec<_>>()
                .join("\n");
            return Err(format!(
                "{:?} failed (status {status}); end of {}:\n{tail}",
                cmd.get_program(),
                log.display()
            ));
        }
        Ok(Child {
            wall,
            cpu: r.cpu,
            max_rss_kb: r.max_rss_kb,
            calls: 0,
        })
    })
    .await
    .map_err(|e| e.to_string())?
}

fn read_json(path: &Path) -> Result<Value, String> {
    let text = std::fs::read_to_string(path).map_err(|e| format!("{}: {e}", path.display()))?;
    serde_json::from_str(&text).map_err(|e| format!("{}: {e}", path.display()))
}

// ---------------------------------------------------------------------------------------
// Shared helpers

/// The checkout this binary was built from.
fn checkout() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

fn runtime(blocking_threads: usize) -> Result<tokio::runtime::Runtime, String> {
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .max_blocking_threads(blocking_threads.max(1))
        .build()
        .map_err(|e| format!("cannot start the async runtime: {e}"))
}

/// A teacher client for the fake server: no retries (a failure must show), no key.
fn teacher(url: &str, model: &str, max_requests: usize) -> Result<OpenAiTeacher, String> {
    let mut config = TeacherConfig::new(url, model);
    config.api_key = None;
    config.max_retries = 0;
    config.request_timeout = Duration::from_secs(300);
    config.limiter = Arc::new(RequestLimiter::new(max_requests));
    OpenAiTeacher::new(config).map_err(|e| format!("teacher client: {e}"))
}

/// Ends an episode's shell and workspace on a blocking thread (killing and reaping the
/// sandbox waits, which must not stall the async workers).
async fn dispose<E: Send + 'static>(env: E, workspace: Workspace) {
    let _ = tokio::task::spawn_blocking(move || {
        drop(env);
        drop(workspace);
    })
    .await;
}

fn check_episode(t: &Trajectory, calls: usize) -> Result<(), String> {
    if t.exit != ExitStatus::Submitted || t.steps.len() != calls {
        return Err(format!(
            "the scripted episode ended with {} after {} calls (expected submitted after {calls}); \
             outcome error: {:?}",
            t.exit.label(),
            t.steps.len(),
            t.outcome.error
        ));
    }
    if let Some(obs) = t
        .steps
        .iter()
        .flat_map(|s| &s.tools)
        .find(|u| u.observation.error)
    {
        return Err(format!(
            "a scripted tool call failed: {} {} -> {}",
            obs.tool, obs.arguments, obs.observation.text
        ));
    }
    Ok(())
}

/// A git repository made from the shipped sample (more-itertools).
pub(crate) fn sample_repo(root: &Path) -> Result<PathBuf, String> {
    let source = checkout().join("examples/sample-repo");
    let repo = root.join("sample-repo");
    run_ok(Command::new("cp").arg("-a").arg(&source).arg(&repo))?;
    git_commit_all(&repo)?;
    Ok(repo)
}

fn git_commit_all(repo: &Path) -> Result<(), String> {
    let git = |args: &[&str]| {
        run_ok(
            Command::new("git")
                .args([
                    "-c",
                    "user.name=bench",
                    "-c",
                    "user.email=bench@example.invalid",
                    "-c",
                    "init.defaultBranch=main",
                ])
                .arg("-C")
                .arg(repo)
                .args(args),
        )
    };
    git(&["init", "-q"])?;
    git(&["add", "-A"])?;
    git(&["commit", "-q", "--no-verify", "-m", "base"])
}

fn run_ok(cmd: &mut Command) -> Result<(), String> {
    let out = cmd
        .stdin(Stdio::null())
        .output()
        .map_err(|e| format!("cannot run {:?}: {e}", cmd.get_program()))?;
    if out.status.success() {
        Ok(())
    } else {
        Err(format!(
            "{:?} {:?} failed: {}",
            cmd.get_program(),
            cmd.get_args().collect::<Vec<_>>(),
            String::from_utf8_lossy(&out.stderr).trim()
        ))
    }
}

pub(crate) fn chmod_755(path: &Path) -> Result<(), String> {
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o755))
        .map_err(|e| format!("chmod {}: {e}", path.display()))
}

fn is_root() -> bool {
    std::fs::metadata("/proc/self").is_ok_and(|m| m.uid() == 0)
}

/// Many sandboxes and connections at once need file descriptors: raise the soft limit.
fn raise_fd_limit() {
    // SAFETY: all-zero is a valid `rlimit`; getrlimit fills it in.
    let mut limit: libc::rlimit = unsafe { std::mem::zeroed() };
    // SAFETY: a pointer to a live local.
    if unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit) } == 0
        && limit.rlim_cur < limit.rlim_max
    {
        limit.rlim_cur = limit.rlim_max;
        // SAFETY: a pointer to a live local holding a limit within the hard limit.
        let _ = unsafe { libc::setrlimit(libc::RLIMIT_NOFILE, &limit) };
    }
}

/// The value at quantile `q` (nearest rank).
fn quantile(values: &[Duration], q: f64) -> Duration {
    if values.is_empty() {
        return Duration::ZERO;
    }
    let mut sorted = values.to_vec();
    sorted.sort();
    let rank = ((q * sorted.len() as f64).ceil() as usize).clamp(1, sorted.len());
    sorted[rank - 1]
}

fn ms(d: Duration) -> String {
    format!("{:.3} ms", d.as_secs_f64() * 1000.0)
}

fn kb(v: u64) -> String {
    if v >= 1024 {
        format!("{:.2} MB", v as f64 / 1024.0)
    } else {
        format!("{v} kB")
    }
}
