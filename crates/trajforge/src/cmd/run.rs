//! `trajforge run`: one agent episode on a repository, watched live.

use std::io::{IsTerminal, Write};
use std::path::PathBuf;
use std::sync::Arc;

use trajforge_agent::{Event, ExitStatus, LoopConfig, run_episode};
use trajforge_pipeline::envs::check_repository;

use crate::args::{SandboxArgs, TeacherArgs};
use crate::episode::{print_event, summary, terminal_safe, write_json_atomically};
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
    #[command(flatten)]
    pub sandbox: SandboxArgs,
    /// Most model calls in the episode.
    #[arg(long, default_value_t = 115, value_name = "N", value_parser = crate::args::at_least_one::<usize>)]
    pub max_steps: usize,
    /// Stop before a prompt would exceed this many tokens (estimated).
    #[arg(long, value_name = "TOKENS")]
    pub max_context: Option<u64>,
    /// End the episode as `stuck` after this many steps in a row making the same calls with
    /// the same results (0: never).
    #[arg(long, default_value_t = trajforge_agent::DEFAULT_MAX_REPEATS, value_name = "K")]
    pub max_repeats: usize,
    /// Replace the default system prompt with this file's text.
    #[arg(long, value_name = "FILE")]
    pub system_prompt: Option<PathBuf>,
    /// Show only the final summary, not every step.
    #[arg(long)]
    pub quiet: bool,
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
        max_repeats: args.max_repeats,
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
    let on_retry = Arc::new(move |event: &trajforge_teacher::RetryEvent| {
        if !quiet {
            stderr_line!(
                "  teacher: retry {} in {:.1}s ({})",
                event.attempt,
                event.delay.as_secs_f64(),
                event.reason
            );
        }
    });
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .map_err(trajforge_pipeline::RunError::Runtime)?;
    let teacher = super::teacher(&args.teacher.spec(), &runtime, Some(on_retry))?;

    let sandbox = args.sandbox.spec();
    if !quiet {
        stderr_line!(
            "preparing the workspace of {} at {} ...",
            repo.display(),
            sandbox.commit
        );
    }
    let environment = sandbox.prepare(&repo)?;
    let mut env = sandbox.workspace(&environment, &repo)?;

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

    if let Some(out) = &args.out {
        write_json_atomically(out, &trajectory)?;
    }
    let patch = trajectory.outcome.patch.as_deref().unwrap_or_default();
    let stdout = std::io::stdout();
    // Byte-exact into a file or pipe; escaped on a terminal, like the steps.
    let patch = if stdout.is_terminal() {
        terminal_safe(patch)
    } else {
        patch.into()
    };
    let mut handle = stdout.lock();
    handle.write_all(patch.as_bytes()).map_err(error::output)?;
    handle.flush().map_err(error::output)?;
    drop(handle);
    stderr_line!("{}", summary(&trajectory, args.out.as_deref()));
    if let Some(size) = trajectory.outcome.patch_cut {
        stderr_line!(
            "warning: the patch is {size} bytes, over the limit of {} bytes: only its head is kept",
            trajforge_repo_env::repo::MAX_PATCH_BYTES
        );
    }
    if let Some(problem) = &trajectory.outcome.error {
        stderr_line!("warning: {}", terminal_safe(problem));
    }
    if trajectory.exit == ExitStatus::Submitted {
        Ok(())
    } else {
        Err(CliError::silent(EXIT_NOT_SUBMITTED))
    }
}
