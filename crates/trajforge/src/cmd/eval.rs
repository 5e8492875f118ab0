//! `trajforge eval`: a model on held-out tasks, scored by resolution and line recall.

use std::path::{Path, PathBuf};

use trajforge_pipeline::eval::{self, EvalError, EvalRunSpec};
use trajforge_pipeline::prepare;
use trajforge_pipeline::teacher::BuiltTeacher;
use trajforge_store::Location;

use crate::args::{BackendArgs, BudgetArgs, EnvArgs, StoreArgs, TeacherArgs};
use crate::cmd::eval_compare;
use crate::error::{CliError, Kind};

/// Options of `trajforge eval`: an evaluation run, or `eval compare`.
#[derive(Debug, clap::Args)]
#[command(args_conflicts_with_subcommands = true, subcommand_negates_reqs = true)]
pub struct Args {
    #[command(subcommand)]
    command: Option<EvalCommand>,
    #[command(flatten)]
    run: RunArgs,
}

#[derive(Debug, clap::Subcommand)]
enum EvalCommand {
    /// Compare two evaluations paired on (task, seed): resolve rates, recall, a 95% bootstrap interval, McNemar and a verdict.
    Compare(eval_compare::Args),
}

/// Options of an evaluation run (flattened into [`Args`], which carries the subcommand settings).
#[derive(Debug, clap::Args)]
#[command(
    mut_arg("store", |a| a.help(STORE_HELP)),
    after_help = "Each task runs once per seed: the agent (the same harness as generate's rollouts) gets the \
problem statement alone in a sandboxed workspace of the task's base commit, with no later history. Hard tasks \
are resolved when every FAIL_TO_PASS and PASS_TO_PASS test passes once the test patch is applied over the \
agent's patch (test files the agent edited are restored first); every task gets line recall against the gold \
patch. EVAL_DIR holds the store (resume by running the same command again; --store URL --run NAME keeps it in a \
database instead), results.jsonl (one row per task \
and seed) and SWE-bench predictions (predictions.jsonl for seed 0, predictions-seed<N>.jsonl for the others). \
`trajforge status EVAL_DIR --json` gives the totals."
)]
pub struct RunArgs {
    /// The repository the tasks come from (top level of a git repository holding their base commits).
    #[arg(long, required = true)]
    pub repo: Option<PathBuf>,
    /// The tasks: JSON Lines from `trajforge tasks mine`, or SWE-bench instances.
    #[arg(long, required = true, value_name = "FILE.jsonl")]
    pub tasks: Option<PathBuf>,
    #[command(flatten)]
    pub teacher: TeacherArgs,
    /// The evaluation folder (created; holds the store and the written rows).
    #[arg(long, required = true, value_name = "EVAL_DIR")]
    pub out: Option<PathBuf>,
    #[command(flatten)]
    pub store: StoreArgs,
    /// Attempts per task (rows pair up by task and seed in `eval compare`; 3 shows the noise).
    #[arg(long, default_value_t = 1, value_name = "N")]
    pub seeds: u32,
    /// A folder of prompt files overriding the defaults (rollout2.txt wraps the problem statement).
    #[arg(long, value_name = "DIR")]
    pub prompts: Option<PathBuf>,
    /// Most model calls per episode.
    #[arg(long, default_value_t = 115, value_name = "N", value_parser = crate::args::at_least_one::<usize>)]
    pub max_steps: usize,
    /// Episodes in flight at once.
    #[arg(long, default_value_t = 4, value_name = "K", value_parser = crate::args::at_least_one::<usize>)]
    pub concurrency: usize,
    /// Test command for hard tasks that name none; it must print per-test results (e.g. `python -m pytest -rA`).
    #[arg(long, value_name = "CMD")]
    pub test_cmd: Option<String>,
    #[command(flatten)]
    pub env: EnvArgs,
    #[command(flatten)]
    pub backend: BackendArgs,
    #[command(flatten)]
    pub budget: BudgetArgs,
}

/// The help of `--store` in `eval` and `web eval`.
pub(crate) const STORE_HELP: &str = "Keep the evaluation's store (jobs, episodes, scores) in this \
PostgreSQL database, e.g. postgres://USER@HOST/DB, as the run --run names (also $TRAJFORGE_STORE with --run); \
the rows are still written to EVAL_DIR [default: EVAL_DIR's own SQLite file]";

/// Run `trajforge eval`.
pub fn run(args: Args) -> Result<(), CliError> {
    match args.command {
        Some(EvalCommand::Compare(args)) => eval_compare::run(args),
        None => run_eval(args.run),
    }
}

/// Run an evaluation.
fn run_eval(args: RunArgs) -> Result<(), CliError> {
    let (Some(repo), Some(tasks), Some(out)) = (args.repo, args.tasks, args.out) else {
        return Err(CliError::input("eval needs --repo, --tasks and --out"));
    };
    let store = args.store.location_or(&out)?;
    let run = EvalRunSpec {
        out: out.clone(),
        store: Some(store.clone()),
        repo,
        tasks,
        seeds: args.seeds,
        prompts: args.prompts,
        max_steps: args.max_steps,
        setup: args.env.setup.clone(),
        test_cmd: args.test_cmd,
        command_timeout: args.env.command_timeout(),
        work_dir: args.env.work_dir.clone(),
        backend: args.backend.backend(),
        budget: args.budget.budget(),
    }
    .load()?;
    let tasks = (run.tasks().len(), "tasks", args.seeds);
    evaluate(
        &args.teacher,
        args.concurrency,
        tasks,
        (&out, &store),
        |t| run.prepare(t),
    )
}

/// Build the teacher, prepare the evaluation with it, say what it holds, drive it, then
/// write its rows (and predictions, for code tasks) to the evaluation folder `out`. `tasks`
/// is the number of tasks, what to call them and the seeds; `store` where the store lives.
pub(crate) fn evaluate(
    teacher: &TeacherArgs,
    concurrency: usize,
    (tasks, noun, seeds): (usize, &str, u32),
    (out, store): (&Path, &Location),
    prepare_run: impl FnOnce(&BuiltTeacher) -> Result<prepare::PreparedRun, EvalError>,
) -> Result<(), CliError> {
    let runtime = prepare::runtime(concurrency)?;
    let teacher = super::teacher(&teacher.spec(), &runtime, None)?;
    let prepared = prepare_run(&teacher)?;
    let (runtime, prepared) = (&runtime, &prepared);
    stderr_line!(
        "{tasks} {noun} x {seeds} seeds = {} rows ({} new{}); {} already done",
        prepared.jobs,
        prepared.added,
        super::generate::resumed(prepared.reclaimed),
        prepared.already_done
    );
    super::drive(
        runtime,
        prepared,
        concurrency,
        &PathBuf::from(store.to_string()),
        "",
    )?;
    write_rows(prepared, out)
}

/// Write an evaluation's rows (and predictions, for code tasks) beside its store, and say where.
fn write_rows(prepared: &prepare::PreparedRun, out: &Path) -> Result<(), CliError> {
    let written = eval::write_outputs(&prepared.store, out)?;
    let predictions = if written.predictions.is_empty() {
        String::new()
    } else {
        let files: Vec<String> = written
            .predictions
            .iter()
            .map(|p| p.display().to_string())
            .collect();
        format!(" and predictions to {}", files.join(", "))
    };
    stderr_line!(
        "wrote {} rows to {}{predictions}",
        written.rows,
        written.results.display(),
    );
    Ok(())
}

impl From<EvalError> for CliError {
    fn from(err: EvalError) -> Self {
        match err {
            EvalError::Run(inner) => inner.into(),
            EvalError::Tasks(_) | EvalError::NoTasks(_) => CliError::from_error(Kind::Input, &err)
                .hint("one task per line: SWE-bench's instance fields (instance_id, repo, base_commit, patch, test_patch, problem_statement, FAIL_TO_PASS, PASS_TO_PASS), as `trajforge tasks mine` writes them"),
            EvalError::DuplicateTask { .. } => CliError::from_error(Kind::Input, &err)
                .hint("each instance_id may appear once"),
            EvalError::NotWebTask { .. } | EvalError::OtherSite { .. } => {
                CliError::from_error(Kind::Input, &err).hint(
                    "give `web eval` the task file `trajforge web tasks` wrote and the site folder it drew them from",
                )
            }
            EvalError::WouldOverwrite(_) => CliError::from_error(Kind::Input, &err).hint(
                "give --out a new folder (or the folder of an earlier evaluation, to resume it); trajforge never overwrites files it did not write",
            ),
            EvalError::Outputs(_) | EvalError::Store(_) => {
                CliError::from_error(Kind::Failure, &err)
                    .hint("the store is intact: run the same command again to write the rows")
            }
        }
    }
}
