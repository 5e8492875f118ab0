//! `trajforge run`: one agent episode on a repository, watched live.

use std::io::{IsTerminal, Write};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use trajforge_agent::{Event, ExitStatus, LoopConfig, RepoEnvironment, Trajectory, run_episode};
use trajforge_sandbox::{Environment, EnvironmentOptions, SandboxError};
use trajforge_teacher::{
    OpenAiTeacher, RequestLimiter, Sampling, Teacher, TeacherConfig, TeacherError, ToolMode,
};

use crate::error::{self, CliError};

/// Exit code of `run` when the episode ended without a confirmed submit.
pub const EXIT_NOT_SUBMITTED: i32 = 3;

/// Options of `trajforge run`.
#[derive(Debug, clap::Args)]
#[command(
    after_help = "Every step is shown live on stderr; the patch goes to stdout at the end. \
Exit status: 0 submitted, 3 ended without a submit (step limit, context, malformed calls, teacher errors), \
1 failure, 2 bad input. The API key comes from TRAJFORGE_API_KEY or OPENAI_API_KEY and is never written anywhere."
)]
pub struct Args {
    /// The repository: the top level of a git repository; the episode starts from --commit.
    #[arg(long)]
    pub repo: PathBuf,
    /// The task given to the agent.
    #[arg(
        long,
        conflicts_with = "task_file",
        required_unless_present = "task_file"
    )]
    pub task: Option<String>,
    /// Read the task from a file.
    #[arg(long, value_name = "FILE")]
    pub task_file: Option<PathBuf>,
    #[command(flatten)]
    pub teacher: TeacherArgs,
    /// Write the whole trajectory (steps, observations, usage, patch) here as JSON.
    #[arg(long, value_name = "FILE")]
    pub out: Option<PathBuf>,
    /// Base commit (any revision) of the workspace.
    #[arg(long, default_value = "HEAD", value_name = "REV")]
    pub commit: String,
    /// A set-up command run once in the repository's environment, with network (e.g. `pip install -e .`).
    #[arg(long, value_name = "CMD")]
    pub setup: Option<String>,
    /// Most model calls in the episode.
    #[arg(long, default_value_t = 115, value_name = "N")]
    pub max_steps: usize,
    /// Stop before a prompt would exceed this many tokens (estimated).
    #[arg(long, value_name = "TOKENS")]
    pub max_context: Option<u64>,
    /// Wall-time limit of one command, in seconds.
    #[arg(long, default_value_t = 300, value_name = "SECS")]
    pub command_timeout: u64,
    /// Replace the default system prompt with this file's text.
    #[arg(long, value_name = "FILE")]
    pub system_prompt: Option<PathBuf>,
    /// Where base snapshots and workspaces live [default: $TRAJFORGE_WORK_DIR or /var/tmp/trajforge].
    #[arg(long, value_name = "DIR")]
    pub work_dir: Option<PathBuf>,
    /// Show only the final summary, not every step.
    #[arg(long)]
    pub quiet: bool,
}

/// How to reach the teacher model; shared by every command that runs one.
#[derive(Debug, clap::Args)]
pub struct TeacherArgs {
    /// Base URL of an OpenAI-compatible server (e.g. http://127.0.0.1:8000/v1), or `local[:PATH.gguf]`
    /// for the embedded model running in-process (default: the model scripts/install-model.sh installs).
    #[arg(long, value_name = "URL")]
    pub teacher: String,
    /// Model name the server serves (not needed with `--teacher local`).
    #[arg(long, value_name = "NAME")]
    pub model: Option<String>,
    /// How tool calls travel: native `tool_calls`, or Qwen/Hermes `<tool_call>` text for servers without a tool parser.
    #[arg(long, value_enum, default_value_t = Mode::Native)]
    pub tool_mode: Mode,
    /// Sampling temperature.
    #[arg(long, default_value_t = 0.6)]
    pub temperature: f32,
    /// Nucleus sampling mass.
    #[arg(long)]
    pub top_p: Option<f32>,
    /// Most tokens generated per model call (the request's `max_tokens`).
    #[arg(long = "max-completion-tokens", value_name = "N")]
    pub max_tokens: Option<u32>,
    /// Sampling seed sent to the server, for servers that honour it.
    #[arg(long, value_name = "N")]
    pub sampling_seed: Option<u64>,
    /// Teacher requests in flight at most.
    #[arg(long, default_value_t = 16, value_name = "N")]
    pub max_requests: usize,
    /// Timeout of one request to the teacher, in seconds.
    #[arg(long, default_value_t = 600, value_name = "SECS")]
    pub request_timeout: u64,
    /// Retries of a failed request (429, 5xx, timeouts, dropped connections).
    #[arg(long, default_value_t = 6, value_name = "N")]
    pub retries: u32,
    /// First wait before a retry, in seconds; it doubles (with jitter) up to 60 s.
    #[arg(long, default_value_t = 1.0, value_name = "SECS")]
    pub backoff: f64,
}

/// Tool-call transports.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Mode {
    /// OpenAI `tools` / `tool_calls`.
    Native,
    /// `<tool_call>{json}</tool_call>` text.
    Hermes,
}

/// A teacher ready to use: any implementation, plus the HTTP client when it is one (for the
/// reachability check).
pub struct BuiltTeacher {
    /// The teacher.
    pub teacher: Arc<dyn Teacher>,
    /// The HTTP client behind it, for remote teachers.
    pub remote: Option<Arc<OpenAiTeacher>>,
    /// The model name recorded with the data.
    pub model: String,
}

impl BuiltTeacher {
    /// Check that a remote server answers, warning when it does not list the model.
    pub async fn preflight(&self, url: &str) -> Result<(), CliError> {
        let Some(remote) = &self.remote else {
            return Ok(());
        };
        match remote.models(Duration::from_secs(15)).await {
            Ok(models) if !models.is_empty() && !models.iter().any(|m| m == &self.model) => {
                eprintln!(
                    "warning: the server lists models {}, not {:?}; trying anyway",
                    models.join(", "),
                    self.model
                );
                Ok(())
            }
            Ok(_) => Ok(()),
            Err(e) => Err(teacher_unreachable(url, &e)),
        }
    }
}

impl TeacherArgs {
    /// Build the teacher (a remote server, or the model in-process), checking the options.
    pub fn build(
        &self,
        on_retry: Option<trajforge_teacher::RetryHook>,
    ) -> Result<BuiltTeacher, CliError> {
        if !(0.0..=2.0).contains(&self.temperature) {
            return Err(CliError::input(format!(
                "--temperature {}: must be between 0 and 2",
                self.temperature
            )));
        }
        let sampling = Sampling {
            temperature: self.temperature,
            top_p: self.top_p,
            max_tokens: self.max_tokens,
            seed: self.sampling_seed,
            ..Sampling::default()
        };
        if let Some(path) = trajforge_local::parse_local_spec(&self.teacher) {
            let options = trajforge_local::LocalOptions {
                sampling,
                ..trajforge_local::LocalOptions::default()
            };
            let local = trajforge_local::LocalTeacher::load(&path, options).map_err(|e| {
                CliError::input(e)
                    .hint("scripts/install-model.sh installs the default model; or pass --teacher local:PATH.gguf")
            })?;
            let model = self
                .model
                .clone()
                .unwrap_or_else(|| local.model_name().to_string());
            return Ok(BuiltTeacher {
                teacher: Arc::new(local),
                remote: None,
                model,
            });
        }
        let model = self.model.clone().ok_or_else(|| {
            CliError::input("--model is required with a server URL")
                .hint("pass the name the server serves (curl URL/models lists them), or use --teacher local")
        })?;
        if self.max_requests == 0 {
            return Err(CliError::input("--max-requests must be at least 1"));
        }
        if !(0.0..=600.0).contains(&self.backoff) {
            return Err(CliError::input(format!(
                "--backoff {}: must be between 0 and 600 seconds",
                self.backoff
            )));
        }
        let mut config = TeacherConfig::new(&self.teacher, &model);
        config.mode = match self.tool_mode {
            Mode::Native => ToolMode::Native,
            Mode::Hermes => ToolMode::Hermes,
        };
        config.sampling = sampling;
        config.request_timeout = Duration::from_secs(self.request_timeout.max(1));
        config.max_retries = self.retries;
        config.backoff_base = Duration::from_secs_f64(self.backoff);
        config.limiter = Arc::new(RequestLimiter::new(self.max_requests));
        config.on_retry = on_retry;
        let remote = Arc::new(OpenAiTeacher::new(config).map_err(|e| {
            CliError::input(e)
                .hint("pass the server's base URL including the API version, e.g. http://127.0.0.1:8000/v1")
        })?);
        Ok(BuiltTeacher {
            teacher: Arc::clone(&remote) as Arc<dyn Teacher>,
            remote: Some(remote),
            model,
        })
    }
}

/// Run `trajforge run`.
pub fn run(args: Args) -> Result<(), CliError> {
    let task = match (&args.task, &args.task_file) {
        (Some(t), _) => t.clone(),
        (None, Some(f)) => std::fs::read_to_string(f)
            .map_err(|e| CliError::input(format!("{}: cannot read the task: {e}", f.display())))?,
        (None, None) => {
            return Err(CliError::input(
                "give the task with --task TEXT or --task-file FILE",
            ));
        }
    };
    if task.trim().is_empty() {
        return Err(CliError::input("the task is empty"));
    }
    let mut config = LoopConfig {
        max_steps: args.max_steps,
        max_context_tokens: args.max_context,
        ..LoopConfig::default()
    };
    if let Some(path) = &args.system_prompt {
        config.system_prompt = std::fs::read_to_string(path).map_err(|e| {
            CliError::input(format!(
                "{}: cannot read the system prompt: {e}",
                path.display()
            ))
        })?;
    }
    let repo = check_repository(&args.repo)?;
    let quiet = args.quiet;
    let teacher = args.teacher.build(Some(Arc::new(
        move |event: &trajforge_teacher::RetryEvent| {
            if !quiet {
                eprintln!(
                    "  teacher: retry {} in {:.1}s ({})",
                    event.attempt,
                    event.delay.as_secs_f64(),
                    event.reason
                );
            }
        },
    )))?;

    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .map_err(|e| CliError::failure(format!("cannot start the async runtime: {e}")))?;

    runtime.block_on(teacher.preflight(&args.teacher.teacher))?;

    let work_dir = args
        .work_dir
        .clone()
        .unwrap_or_else(|| default_work_dir(&repo));
    let mut options = EnvironmentOptions::new(&work_dir);
    options.commit = Some(args.commit.clone());
    options.sandbox.limits.timeout = Duration::from_secs(args.command_timeout.max(1));
    if !quiet {
        eprintln!(
            "preparing the workspace of {} at {} ...",
            repo.display(),
            args.commit
        );
    }
    let environment = Environment::prepare(&repo, args.setup.as_deref(), &options)
        .map_err(|e| sandbox_error(e, &work_dir))?;
    if let Some(out) = environment.setup_output()
        && out.exit_code != Some(0)
    {
        return Err(CliError::failure(format!(
            "the set-up command failed (exit {:?}):\n{}",
            out.exit_code,
            out.output.trim_end()
        ))
        .hint("fix --setup; it runs once in the base snapshot with network access"));
    }
    let workspace = environment
        .create_workspace()
        .map_err(|e| sandbox_error(e, &work_dir))?;
    let session = workspace
        .session()
        .map_err(|e| sandbox_error(e, &work_dir))?;
    let root = environment.config().workspace_dir.display().to_string();
    let mut env = RepoEnvironment::new(
        session,
        &root,
        Some(Duration::from_secs(args.command_timeout.max(1))),
    );

    let color = std::io::stderr().is_terminal();
    let trajectory = runtime.block_on(async {
        let mut show = |event: Event<'_>| {
            if !quiet {
                print_event(&event, color);
            }
        };
        run_episode(
            teacher.teacher.as_ref(),
            &mut env,
            &task,
            &config,
            &mut show,
        )
        .await
    });
    drop(env);
    drop(workspace);

    if let Some(out) = &args.out {
        write_json_atomically(out, &trajectory)?;
    }
    let patch = trajectory.outcome.patch.clone().unwrap_or_default();
    let stdout = std::io::stdout();
    let mut handle = stdout.lock();
    handle.write_all(patch.as_bytes()).map_err(error::output)?;
    handle.flush().map_err(error::output)?;
    drop(handle);
    eprintln!("{}", summary(&trajectory, args.out.as_deref()));
    if let Some(problem) = &trajectory.outcome.error {
        eprintln!("warning: {problem}");
    }
    if trajectory.exit == ExitStatus::Submitted {
        Ok(())
    } else {
        Err(CliError {
            message: String::new(),
            hint: None,
            code: EXIT_NOT_SUBMITTED,
        })
    }
}

/// The repository must be the top level of a git repository: workspaces are snapshots of a commit.
pub fn check_repository(repo: &Path) -> Result<PathBuf, CliError> {
    let canonical = std::fs::canonicalize(repo).map_err(|e| {
        CliError::input(format!("{}: {e}", repo.display()))
            .hint("pass the folder of a git repository with --repo")
    })?;
    if !canonical.is_dir() {
        return Err(CliError::input(format!(
            "{}: is not a directory",
            repo.display()
        )));
    }
    let out = std::process::Command::new("git")
        .arg("-C")
        .arg(&canonical)
        .args(["rev-parse", "--show-toplevel"])
        .output()
        .map_err(|e| {
            CliError::failure(format!("cannot run git: {e}"))
                .hint("install git (scripts/setup.sh does)")
        })?;
    if !out.status.success() {
        return Err(CliError::input(format!("{}: not a git repository", repo.display())).hint(
            "episodes start from a commit; make one with: git init && git add -A && git commit -m base",
        ));
    }
    let top = PathBuf::from(String::from_utf8_lossy(&out.stdout).trim());
    let top = std::fs::canonicalize(&top).unwrap_or(top);
    if top != canonical {
        return Err(CliError::input(format!(
            "{} is inside the git repository {} but is not its top level",
            repo.display(),
            top.display()
        ))
        .hint("pass the repository's top level, or make the folder a repository of its own (git init)"));
    }
    Ok(canonical)
}

/// `/var/tmp/trajforge/env-<hash of the repository path>`: reused across runs, and reachable
/// by the unprivileged uid the sandbox uses when trajforge runs as root.
pub fn default_work_dir(repo: &Path) -> PathBuf {
    let base = std::env::var_os("TRAJFORGE_WORK_DIR")
        .filter(|d| !d.is_empty())
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("/var/tmp/trajforge"));
    // FNV-1a: stable across runs and releases, unlike std's hasher.
    let hash = trajforge_hash::fnv1a64(repo.as_os_str().as_encoded_bytes());
    base.join(format!("env-{hash:016x}"))
}

pub fn teacher_unreachable(url: &str, err: &TeacherError) -> CliError {
    let hint = match err {
        TeacherError::Status {
            status: 401 | 403, ..
        } => "the server refused the credentials: set TRAJFORGE_API_KEY (or OPENAI_API_KEY)"
            .to_string(),
        TeacherError::Status { status: 404, .. } => {
            format!("no /models under {url}: the base URL usually ends in /v1")
        }
        _ => {
            format!("is the server running and listening at {url}? (check with: curl {url}/models)")
        }
    };
    CliError::failure(format!("cannot reach the teacher: {err}")).hint(hint)
}

pub fn sandbox_error(err: SandboxError, work_dir: &Path) -> CliError {
    let hint = match &err {
        SandboxError::BwrapMissing { .. } => {
            "install bubblewrap: scripts/setup.sh does it".to_string()
        }
        SandboxError::NotAccessible { .. } => format!(
            "the sandbox runs as an unprivileged user that must reach {}; choose another --work-dir (e.g. under /var/tmp)",
            work_dir.display()
        ),
        SandboxError::Git { .. } => {
            "check that --commit names a commit of the repository".to_string()
        }
        _ => "see the message above; `scripts/test.sh` runs the sandbox's own checks".to_string(),
    };
    CliError::failure(err).hint(hint)
}

/// Write JSON to a temporary file and rename it, so a crash never leaves half a file.
pub fn write_json_atomically(path: &Path, value: &Trajectory) -> Result<(), CliError> {
    let dir = path
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    let tmp = dir.join(format!(
        ".{}.{}.tmp",
        path.file_name()
            .and_then(|n| n.to_str())
            .unwrap_or("trajectory"),
        std::process::id()
    ));
    let write = || -> std::io::Result<()> {
        let file = std::fs::File::create(&tmp)?;
        let mut out = std::io::BufWriter::new(file);
        serde_json::to_writer_pretty(&mut out, value)?;
        out.write_all(b"\n")?;
        out.into_inner().map_err(|e| e.into_error())?.sync_all()?;
        std::fs::rename(&tmp, path)
    };
    write().map_err(|e| {
        let _ = std::fs::remove_file(&tmp);
        CliError::failure(format!(
            "{}: cannot write the trajectory: {e}",
            path.display()
        ))
    })
}

fn print_event(event: &Event<'_>, color: bool) {
    let (dim, bold, reset) = if color {
        ("\x1b[2m", "\x1b[1m", "\x1b[0m")
    } else {
        ("", "", "")
    };
    match event {
        Event::Assistant {
            step,
            message,
            usage,
            model_time,
        } => {
            eprintln!(
                "{bold}── step {} ──{reset} {dim}{:.1}s, {} prompt + {} completion tokens{reset}",
                step + 1,
                model_time.as_secs_f64(),
                usage.prompt_tokens,
                usage.completion_tokens
            );
            if let Some(thought) = message
                .reasoning
                .as_deref()
                .filter(|t| !t.trim().is_empty())
            {
                eprintln!("{dim}thinking: {}{reset}", head(thought, 6));
            }
            if let Some(text) = message.content.as_deref().filter(|t| !t.trim().is_empty()) {
                eprintln!("{}", head(text, 12));
            }
        }
        Event::Tool {
            call, observation, ..
        } => {
            eprintln!("{bold}→ {}{reset} {}", call.name, head(&call.arguments, 8));
            let status = match (observation.error, observation.exit_code) {
                (true, _) => "error".to_string(),
                (false, Some(code)) => format!("exit {code}"),
                (false, None) => "ok".to_string(),
            };
            eprintln!(
                "{dim}← {status}, {} ms{reset}",
                observation.duration.as_millis()
            );
            eprintln!("{}", indent(&head(&observation.text, 12)));
        }
        Event::TeacherFailed { error, .. } => eprintln!("teacher failed: {error}"),
    }
}

fn head(text: &str, lines: usize) -> String {
    let all: Vec<&str> = text.lines().collect();
    if all.len() <= lines {
        return text.trim_end().to_string();
    }
    format!(
        "{}\n... ({} more lines)",
        all[..lines].join("\n"),
        all.len() - lines
    )
}

fn indent(text: &str) -> String {
    text.lines()
        .map(|l| format!("   {l}"))
        .collect::<Vec<_>>()
        .join("\n")
}

/// The one-line summary printed at the end.
pub fn summary(t: &Trajectory, out: Option<&Path>) -> String {
    let patch = t.outcome.patch.as_deref().unwrap_or("");
    let (mut files, mut added, mut removed) = (0, 0, 0);
    for line in patch.lines() {
        if line.starts_with("diff --git ") {
            files += 1;
        } else if line.starts_with('+') && !line.starts_with("+++") {
            added += 1;
        } else if line.starts_with('-') && !line.starts_with("---") {
            removed += 1;
        }
    }
    let status = match &t.exit {
        ExitStatus::TeacherError(reason) => format!("teacher error ({reason})"),
        other => other.label().replace('_', " "),
    };
    let mut s = format!(
        "{status} after {} steps in {:.1}s; {} prompt + {} completion tokens; patch: {files} files, +{added} -{removed}",
        t.steps.len(),
        t.duration.as_secs_f64(),
        t.usage.prompt_tokens,
        t.usage.completion_tokens
    );
    if let Some(out) = out {
        s.push_str(&format!("; trajectory in {}", out.display()));
    }
    s
}
