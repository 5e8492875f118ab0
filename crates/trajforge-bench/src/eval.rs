//! `trajforge-bench eval`: evaluation overhead per task against an instant fake teacher.
//!
//! Real tasks from more-itertools' history (the bundle of the CLI tests), an instant teacher
//! that applies the gold patch and submits, and `trajforge eval`'s library run: wall time and
//! our CPU per (task, seed) row, cold (snapshots made) and warm (snapshots reused). The
//! baseline, measured in the same run, is the bare work the scoring cannot avoid, done by a
//! shell on the host: check out the base, apply the gold and test patches, run the tests.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Arc;
use std::time::{Duration, Instant};

use serde_json::{Value, json};
use trajforge_eval::{Task, write_jsonl};
use trajforge_pipeline::eval::EvalRunSpec;
use trajforge_pipeline::prepare::Budget;
use trajforge_pipeline::teacher::BuiltTeacher;
use trajforge_teacher::{OpenAiTeacher, TeacherConfig};
use trajforge_testkit::history::{FIXES, fix_tasks};
use trajforge_testkit::{FakeServer, Script, ServerOptions, Step, git};

/// Options of the evaluation benchmark.
#[derive(Debug, clap::Args)]
pub struct EvalArgs {
    /// more-itertools' history as a git bundle [default: $TRAJFORGE_TEST_DATA/more-itertools.bundle,
    /// else shared/data/more-itertools.bundle above the checkout].
    #[arg(long)]
    pub bundle: Option<PathBuf>,
    /// Attempts per task.
    #[arg(long, default_value_t = 3)]
    pub seeds: u32,
    /// Rows in flight (1 compares per row with the sequential baseline).
    #[arg(long, default_value_t = 1)]
    pub concurrency: usize,
    /// Which cases to run: code tasks (more-itertools), web tasks (the bidict docs), or both.
    #[arg(long, value_enum, default_value_t = Case::All)]
    pub case: Case,
    /// The web case's site folder of HTML [default: the bidict docs under $TRAJFORGE_TEST_DATA].
    #[arg(long)]
    pub site: Option<PathBuf>,
    /// Navigation tasks of the web case.
    #[arg(long, default_value_t = 8)]
    pub web_tasks: usize,
}

/// The cases of the evaluation benchmark.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Case {
    /// Code and web.
    All,
    /// Code tasks from more-itertools' history, scored by their tests.
    Code,
    /// Navigation tasks on a replayed site.
    Web,
}

/// A teacher client of the fake server `server`, retrying fast.
pub(crate) fn instant_teacher(server: &FakeServer) -> Result<BuiltTeacher, String> {
    let mut config = TeacherConfig::new(server.url(), "fake-model");
    config.api_key = None;
    config.backoff_base = Duration::from_millis(10);
    Ok(BuiltTeacher {
        teacher: Arc::new(OpenAiTeacher::new(config).map_err(|e| e.to_string())?),
        remote: None,
        model: "fake-model".into(),
        url: server.url(),
        settings: Default::default(),
    })
}

fn find_bundle(given: Option<PathBuf>) -> Result<PathBuf, String> {
    if let Some(b) = given {
        return Ok(b);
    }
    let bundle = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../examples/more-itertools.bundle");
    if bundle.is_file() {
        Ok(bundle)
    } else {
        Err(format!("no bundle at {}: give --bundle", bundle.display()))
    }
}

/// Drive a prepared evaluation and write its rows into `out`: the wall and CPU seconds since
/// `started` and `cpu0`, and the summary of its rows.
pub(crate) async fn drive_measured(
    prepared: trajforge_pipeline::prepare::PreparedRun,
    concurrency: usize,
    out: &Path,
    started: Instant,
    cpu0: f64,
) -> Result<(f64, f64, trajforge_eval::Summary), String> {
    let err = |e: &dyn std::fmt::Display| e.to_string();
    prepared.drive(concurrency).await.map_err(|e| err(&e))?;
    trajforge_pipeline::eval::write_outputs(&prepared.store, out).map_err(|e| err(&e))?;
    let wall = started.elapsed().as_secs_f64();
    let cpu = cpu_seconds() - cpu0;
    let summary = trajforge_pipeline::eval::summary(&prepared.store).map_err(|e| err(&e))?;
    Ok((wall, cpu, summary))
}

/// A scripted teacher's view of a request: every message's text run together (to find the
/// task in), and the assistant turns so far.
pub(crate) fn conversation(req: &Value) -> (String, usize) {
    let messages = req["messages"]
        .as_array()
        .map(Vec::as_slice)
        .unwrap_or_default();
    let all = messages
        .iter()
        .filter_map(|m| m["content"].as_str())
        .collect();
    let turns = messages.iter().filter(|m| m["role"] == "assistant").count();
    (all, turns)
}

/// An instant teacher that applies each task's gold patch, then submits.
async fn gold_teacher(tasks: &[Task]) -> FakeServer {
    let tasks = Arc::new(tasks.to_vec());
    let script = Script::handler(move |req: &Value| {
        let (all, turn) = conversation(req);
        match tasks.iter().find(|t| all.contains(&t.problem_statement)) {
            Some(t) if turn == 0 => Step::tool_call(
                "bash",
                json!({"command": format!("cd /workspace && git apply <<'GOLD'\n{}GOLD", t.patch)}),
            ),
            _ if turn < 4 => Step::tool_call("submit", json!({})),
            _ => Step::text("done"),
        }
    });
    FakeServer::start_with(script, ServerOptions::instant(Duration::ZERO, 64)).await
}

/// CPU time of this process (user + system), seconds.
pub(crate) fn cpu_seconds() -> f64 {
    // SAFETY: getrusage fills the struct; all-zero is a valid starting value.
    let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
    // SAFETY: RUSAGE_SELF with a pointer to a live local.
    unsafe { libc::getrusage(libc::RUSAGE_SELF, &mut usage) };
    let tv = |t: libc::timeval| t.tv_sec as f64 + t.tv_usec as f64 / 1e6;
    tv(usage.ru_utime) + tv(usage.ru_stime)
}

struct Measured {
    wall: f64,
    /// Our process's CPU (eval runs only).
    cpu: f64,
    rows: usize,
    resolved: u64,
    /// Time in the test command (baseline only).
    test_seconds: f64,
}

impl Measured {
    /// `seconds` of these rows as milliseconds per row.
    fn ms_per_row(&self, seconds: f64) -> f64 {
        seconds * 1000.0 / self.rows.max(1) as f64
    }

    /// `N rows, M <resolved>; wall Ws = X ms per row`.
    fn figures(&self, resolved: &str) -> String {
        format!(
            "{} rows, {} {resolved}; wall {:.2}s = {:.0} ms per row",
            self.rows,
            self.resolved,
            self.wall,
            self.ms_per_row(self.wall)
        )
    }
}

async fn one_eval(
    base: &Path,
    repo: &Path,
    tasks_file: &Path,
    name: &str,
    args: &EvalArgs,
    teacher: &BuiltTeacher,
) -> Result<Measured, String> {
    let out = base.join(name);
    let run = EvalRunSpec {
        out: out.clone(),
        store: None,
        repo: repo.to_path_buf(),
        tasks: tasks_file.to_path_buf(),
        seeds: args.seeds,
        prompts: None,
        max_steps: 10,
        setup: None,
        test_cmd: None,
        command_timeout: Duration::from_secs(120),
        work_dir: Some(base.join("work")),
        backend: trajforge_sandbox::Backend::Bubblewrap,
        budget: Budget::default(),
    }
    .load()
    .map_err(|e| e.to_string())?;
    let cpu0 = cpu_seconds();
    let started = Instant::now();
    let prepared = run.prepare(teacher).map_err(|e| e.to_string())?;
    let (wall, cpu, summary) =
        drive_measured(prepared, args.concurrency, &out, started, cpu0).await?;
    Ok(Measured {
        wall,
        cpu,
        rows: summary.all.rows as usize,
        resolved: summary.all.resolved,
        test_seconds: 0.0,
    })
}

/// The floor: per row, check out the base in a plain clone, apply both patches, run the tests.
fn baseline(repo: &Path, tasks: &[Task], seeds: u32) -> Result<Measured, String> {
    let started = Instant::now();
    let mut test_seconds = 0.0;
    let mut resolved = 0;
    let mut rows = 0;
    for _ in 0..seeds {
        for t in tasks {
            git(repo, &["checkout", "-q", "--detach", &t.base_commit])?;
            for patch in [&t.patch, &t.test_patch] {
                let mut child = Command::new("git")
                    .arg("-C")
                    .arg(repo)
                    .args(["apply", "-"])
                    .stdin(std::process::Stdio::piped())
                    .spawn()
                    .map_err(|e| e.to_string())?;
                use std::io::Write;
                child
                    .stdin
                    .take()
                    .ok_or("no stdin")?
                    .write_all(patch.as_bytes())
                    .map_err(|e| e.to_string())?;
                if !child.wait().map_err(|e| e.to_string())?.success() {
                    return Err(format!("{}: a patch does not apply", t.instance_id));
                }
            }
            let test_started = Instant::now();
            // The system's python3, as the sandbox sees it (a version manager's shim on the
            // host PATH would add its own start-up time to the baseline).
            let out = Command::new("bash")
                .args(["-c", t.test_cmd.as_deref().unwrap_or("true")])
                .env("PATH", "/usr/local/bin:/usr/bin:/bin")
                .current_dir(repo)
                .output()
                .map_err(|e| e.to_string())?;
            test_seconds += test_started.elapsed().as_secs_f64();
            resolved += u64::from(out.status.success());
            rows += 1;
            git(repo, &["checkout", "-q", "--", "."])?;
            git(repo, &["clean", "-qfd"])?;
        }
    }
    Ok(Measured {
        wall: started.elapsed().as_secs_f64(),
        cpu: 0.0,
        rows,
        resolved,
        test_seconds,
    })
}

/// Run the benchmark's cases and print their figures.
pub fn run(args: EvalArgs) -> Result<(), String> {
    let base = std::env::temp_dir().join(format!("trajforge-bench-eval-{}", std::process::id()));
    std::fs::create_dir_all(&base).map_err(|e| e.to_string())?;
    // The sandbox's unprivileged user must reach the work folder.
    Command::new("chmod")
        .arg("755")
        .arg(&base)
        .status()
        .map_err(|e| e.to_string())?;
    let result = (|| {
        if args.case != Case::Web {
            code_case(&args, &base)?;
        }
        if args.case != Case::Code {
            let runtime = tokio::runtime::Builder::new_multi_thread()
                .enable_all()
                .build()
                .map_err(|e| e.to_string())?;
            runtime.block_on(crate::eval_web::run(&args, &base))?;
        }
        Ok(())
    })();
    let _ = std::fs::remove_dir_all(&base);
    result
}

/// The code case: more-itertools' fixes, scored by their tests.
fn code_case(args: &EvalArgs, base: &Path) -> Result<(), String> {
    let bundle = find_bundle(args.bundle.clone())?;
    let repo = base.join("more-itertools");
    git(
        base,
        &[
            "clone",
            "-q",
            &bundle.display().to_string(),
            &repo.display().to_string(),
        ],
    )?;
    let tasks = fix_tasks(&repo, &FIXES)?;
    let tasks_file = base.join("tasks.jsonl");
    write_jsonl(&tasks_file, &tasks).map_err(|e| e.to_string())?;
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .max_blocking_threads(16)
        .enable_all()
        .build()
        .map_err(|e| e.to_string())?;
    let (cold, warm, requests) = runtime.block_on(async {
        let server = gold_teacher(&tasks).await;
        let teacher = instant_teacher(&server)?;
        let cold = one_eval(base, &repo, &tasks_file, "cold", args, &teacher).await?;
        let warm = one_eval(base, &repo, &tasks_file, "warm", args, &teacher).await?;
        Ok::<_, String>((cold, warm, server.chat_request_count()))
    })?;
    let floor = baseline(&repo, &tasks, args.seeds)?;

    println!(
        "eval benchmark: {} more-itertools tasks x {} seeds, instant fake teacher applying the gold patch, {} in flight ({requests} teacher requests)",
        tasks.len(),
        args.seeds,
        args.concurrency
    );
    for (name, m) in [
        ("cold (snapshots made)", &cold),
        ("warm (snapshots reused)", &warm),
    ] {
        println!(
            "  eval {name}: {}; our CPU {:.0} ms per row",
            m.figures("resolved"),
            m.ms_per_row(m.cpu),
        );
    }
    println!(
        "  baseline (host shell: checkout, apply gold + test patch, run tests; sequential): {}, of which tests {:.0} ms",
        floor.figures("passing"),
        floor.ms_per_row(floor.test_seconds),
    );
    println!(
        "  overhead per row over the baseline (episode in a sandboxed workspace, scoring workspace, store), warm: {:.0} ms wall at {} in flight",
        warm.ms_per_row(warm.wall) - floor.ms_per_row(floor.wall),
        args.concurrency
    );
    Ok(())
}
