//! `trajforge generate`: the main job, Soft-Verified Generation on a repository.

use std::path::PathBuf;

use trajforge_pipeline::prepare::{self, CodeRunSpec, Plan, PrepareEvent};

use crate::args::{RunArgs, SandboxArgs, TeacherArgs};
use crate::error::CliError;

/// Options of `trajforge generate`.
#[derive(Debug, clap::Args)]
#[command(
    after_help = "Every stage is committed to RUN_DIR/trajforge.db before the next starts: run the same \
command again to resume after a crash, kill or Ctrl-C. Settings that change the data's meaning (commit, menu, \
demonstrations, prompts, threshold, attempts, seed, model, test command, functions excluded by --exclude-tasks) cannot change on resume; \
concurrency and budgets can, and a larger -n adds functions."
)]
pub struct Args {
    /// The repository (top level of a git repository).
    #[arg(long)]
    pub repo: PathBuf,
    #[command(flatten)]
    pub teacher: TeacherArgs,
    #[command(flatten)]
    pub run: RunArgs,
    /// Functions to sample.
    #[arg(
        short = 'n',
        long = "functions",
        default_value_t = 10,
        value_name = "N"
    )]
    pub n: usize,
    /// Attempts (bug types drawn) per function before giving up.
    #[arg(long, default_value_t = 3, value_name = "N", value_parser = crate::args::at_least_one::<u32>)]
    pub attempts: u32,
    /// Your own demonstration issues (JSONL with a "text" field) [default: the built-in pool].
    #[arg(long, value_name = "FILE.jsonl")]
    pub demos: Option<PathBuf>,
    /// A folder of prompt files overriding the defaults (rollout1.txt, selfcheck.txt, pr_system.txt, pr.txt, rollout2.txt).
    #[arg(long, value_name = "DIR")]
    pub prompts: Option<PathBuf>,
    /// Functions in flight at once.
    #[arg(long, default_value_t = 4, value_name = "K", value_parser = crate::args::at_least_one::<usize>)]
    pub concurrency: usize,
    /// A test command for the behavioural verdict (run on the base, P1 and P2).
    #[arg(long, value_name = "CMD")]
    pub test_cmd: Option<String>,
    /// Most model calls per rollout.
    #[arg(long, default_value_t = 115, value_name = "N", value_parser = crate::args::at_least_one::<usize>)]
    pub max_steps: usize,
    #[command(flatten)]
    pub sandbox: SandboxArgs,
    /// Sample test files too.
    #[arg(long)]
    pub include_tests: bool,
    /// Only create the run and enqueue its jobs; `trajforge worker` processes do the work
    /// (with --store).
    #[arg(long)]
    pub no_work: bool,
    /// Never sample a function that these held-out tasks' gold patches touch (a `tasks mine`
    /// or SWE-bench-format JSONL file; see the README's decontamination recipe).
    #[arg(long, value_name = "TASKS.jsonl")]
    pub exclude_tasks: Option<PathBuf>,
}

/// Run `trajforge generate`.
pub fn run(args: Args) -> Result<(), CliError> {
    let run = CodeRunSpec {
        basics: args
            .run
            .basics(args.n, args.prompts.clone(), args.max_steps)?,
        repo: args.repo.clone(),
        attempts: args.attempts,
        demos: args.demos.clone(),
        test_cmd: args.test_cmd.clone(),
        include_tests: args.include_tests,
        exclude_tasks: args.exclude_tasks.clone(),
        sandbox: args.sandbox.spec(),
    }
    .load()?;
    let runtime = prepare::runtime(args.concurrency)?;
    let teacher = super::teacher(&args.teacher.spec(), &runtime, None)?;
    let prepared = run.prepare(&teacher, &mut |event| {
        if let PrepareEvent::PreparingRepository { repo, commit } = event {
            stderr_line!(
                "preparing the repository environment ({} at {commit}) ...",
                repo.display()
            );
        }
    })?;
    let (available, excluded) = match prepared.plan {
        Plan::Code {
            available,
            excluded,
        } => (available, excluded),
        Plan::Web { .. } | Plan::Eval { .. } => (0, 0),
    };
    let excluded = if args.exclude_tasks.is_some() {
        format!(", {excluded} more left out as touched by the held-out tasks")
    } else {
        String::new()
    };
    stderr_line!(
        "{} functions sampled of {available}{excluded} ({} new{}); {} already done",
        prepared.jobs,
        prepared.added,
        resumed(prepared.reclaimed),
        prepared.already_done
    );
    if args.no_work {
        stderr_line!(
            "{}: {} jobs queued; start `trajforge worker` processes to work on them",
            args.run.out_name().display(),
            prepared.jobs
        );
        return Ok(());
    }
    super::drive(
        &runtime,
        &prepared,
        args.concurrency,
        &args.run.out_name(),
        "No trajectory passed soft verification in this run. With a small teacher this is expected: it \
         rarely produces a fix that a second rollout reproduces. Point the same command at a capable model on \
         an OpenAI-compatible server, e.g. --teacher http://GPU-HOST:8000/v1 --model <served model name>.",
    )
}

/// `, N resumed from an interrupted run` when leases of dead processes were taken back.
pub(crate) fn resumed(reclaimed: usize) -> String {
    if reclaimed > 0 {
        format!(", {reclaimed} resumed from an interrupted run")
    } else {
        String::new()
    }
}
