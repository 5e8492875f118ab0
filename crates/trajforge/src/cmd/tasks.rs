//! `trajforge tasks mine`: held-out tasks from the repository's own history.

use std::io::IsTerminal;
use std::path::PathBuf;
use std::time::Instant;

use trajforge_eval::Limits;
use trajforge_pipeline::prepare;
use trajforge_pipeline::tasks::history::Start;
use trajforge_pipeline::tasks::statement::StatementSource;
use trajforge_pipeline::tasks::{self, MineSpec, progress_of, screening_counts};

use crate::args::{BackendArgs, EnvArgs, StoreArgs, TeacherArgs};
use crate::error::CliError;

/// Options of `trajforge tasks`.
#[derive(Debug, clap::Args)]
pub struct Args {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, clap::Subcommand)]
enum Command {
    /// Mine held-out tasks (SWE-bench instances) from the first-parent history after a split point.
    Mine(Box<MineArgs>),
}

/// Options of `trajforge tasks mine`.
#[derive(Debug, clap::Args)]
#[command(
    // The teacher is optional here: `--statement commit` needs none.
    mut_arg("teacher", |a| a.required(false)),
    // A set-up and a container image only serve the tests.
    mut_arg("setup", |a| a.requires("test_cmd")),
    // A folder given in trajforge.toml stays relative to the file, as before URLs were taken.
    mut_arg("store", |a| a.value_name("DIR|URL").value_hint(clap::ValueHint::DirPath).help("The run's store: a run folder, or a \
PostgreSQL database (postgres://USER@HOST/DB) holding the run --run names [default: OUT with the extension .run]")),
    mut_arg("image", |a| a.requires("test_cmd")),
    after_help = "Each first-parent commit after the split point is one change (a merge counts as one: its diff \
against its first parent). Reverts, changes to docs, tests, packaging or generated files only, and huge changes \
are skipped with a counted reason. With --test-cmd the tests run in the sandbox twice at the base commit with \
the test patch and twice with the gold patch too: FAIL_TO_PASS tests make a hard task, else it is soft. Every \
change is committed to the run's store (--store: a run folder, default OUT with the extension .run, or \
--store URL --run NAME): run the same command again to resume."
)]
pub struct MineArgs {
    /// The repository (top level of a git repository).
    #[arg(long)]
    pub repo: PathBuf,
    /// Mine commits after this date (anything `git log --since` reads, e.g. 2026-06-01).
    #[arg(
        long,
        value_name = "DATE",
        required_unless_present = "after",
        conflicts_with = "after"
    )]
    pub since: Option<String>,
    /// Mine commits after this revision (the split point, e.g. the commit `generate` ran at).
    #[arg(long, value_name = "REV")]
    pub after: Option<String>,
    /// The last commit to mine: a revision, else a date [default: HEAD].
    #[arg(long, value_name = "REV|DATE")]
    pub until: Option<String>,
    /// The tasks file (JSON Lines, SWE-bench's instance format plus kind, setup, test_cmd, commit).
    #[arg(long, value_name = "FILE")]
    pub out: PathBuf,
    #[command(flatten)]
    pub store: StoreArgs,
    /// Where problem statements come from: an issue the teacher writes from the change, or the commit message.
    #[arg(long, value_enum, default_value_t = Statement::Teacher)]
    pub statement: Statement,
    #[command(flatten)]
    pub teacher: Option<TeacherArgs>,
    /// A test command printing per-test results (e.g. `python3 -m unittest -v`, `pytest -rA`); makes hard tasks.
    #[arg(long, value_name = "CMD")]
    pub test_cmd: Option<String>,
    #[command(flatten)]
    pub env: EnvArgs,
    #[command(flatten)]
    pub backend: BackendArgs,
    /// Skip changes touching more source and test files than this.
    #[arg(long, default_value_t = Limits::default().max_files, value_name = "N")]
    pub max_files: usize,
    /// Skip changes with more changed source and test lines than this.
    #[arg(long, default_value_t = Limits::default().max_lines, value_name = "N")]
    pub max_lines: usize,
    /// Changes in flight at once.
    #[arg(long, default_value_t = 2, value_name = "K", value_parser = crate::args::at_least_one::<usize>)]
    pub concurrency: usize,
    /// Print the summary as JSON on stdout.
    #[arg(long)]
    pub json: bool,
    /// Only screen the window and print the counts: no store, no statements, no tests.
    #[arg(long)]
    pub dry_run: bool,
}

/// Where problem statements come from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Statement {
    /// The teacher writes an issue from the diff and the commit message (symptom, never the fix).
    Teacher,
    /// The commit message (no teacher needed).
    Commit,
}

/// Run `trajforge tasks`.
pub fn run(args: Args) -> Result<(), CliError> {
    match args.command {
        Command::Mine(args) => mine(*args),
    }
}

fn mine(args: MineArgs) -> Result<(), CliError> {
    let statement = match args.statement {
        Statement::Teacher => StatementSource::Teacher,
        Statement::Commit => StatementSource::Commit,
    };
    if statement == StatementSource::Teacher && args.teacher.is_none() && !args.dry_run {
        return Err(CliError::input("problem statements by the teacher need --teacher (and --model)")
            .hint("give --teacher URL --model NAME, or use --statement commit to take the commit messages"));
    }
    let spec = MineSpec {
        repo: args.repo.clone(),
        start: match (&args.since, &args.after) {
            (_, Some(rev)) => Start::After(rev.clone()),
            (Some(date), None) => Start::Since(date.clone()),
            (None, None) => return Err(CliError::input("give --since DATE or --after REV")),
        },
        until: args.until.clone(),
        out: args.out.clone(),
        store: Some(args.store.location_or(&args.out.with_extension("run"))?),
        statement,
        limits: Limits {
            max_files: args.max_files,
            max_lines: args.max_lines,
        },
        test_cmd: args.test_cmd.clone(),
        setup: args.env.setup.clone(),
        command_timeout: args.env.command_timeout(),
        work_dir: args.env.work_dir.clone(),
        backend: args.backend.backend(),
    };
    if args.dry_run {
        let started = Instant::now();
        let (_, _, screening) = spec.screen()?;
        let counts = screening_counts(&screening);
        if args.json {
            crate::error::print_json(&counts)?;
        }
        stderr_line!(
            "screened {} first-parent commits in {:.2}s: {} changes would be mined; skipped {}",
            counts.commits,
            started.elapsed().as_secs_f64(),
            counts.tasks,
            tasks::counts(&counts.skipped)
        );
        return Ok(());
    }
    let runtime = prepare::runtime(args.concurrency)?;
    let teacher = match (&args.teacher, statement) {
        (Some(t), StatementSource::Teacher) => Some(super::teacher(&t.spec(), &runtime, None)?),
        _ => None,
    };
    let run = spec.prepare(teacher.as_ref())?;
    stderr_line!(
        "screened {} first-parent commits: {} changes to mine ({} new{}), {} already done; skipped {}",
        run.commits,
        run.jobs,
        run.added,
        super::generate::resumed(run.reclaimed),
        run.already_done,
        tasks::counts(&run.skipped)
    );
    let result = runtime.block_on(async {
        tokio::spawn(super::stop_on_signal(run.control()));
        let (store, started) = (run.store(), Instant::now());
        let progress = tokio::spawn(super::progress_loop(move || {
            let p = progress_of(&store).ok()?;
            let seconds = started.elapsed().as_secs_f64();
            Some(format!(
                "mining: {}/{} changes, {} hard, {} soft, {seconds:.0}s",
                p.done, p.jobs, p.hard, p.soft
            ))
        }));
        let r = run.drive(args.concurrency).await;
        progress.abort();
        r
    });
    if std::io::stderr().is_terminal() {
        stderr_line!();
    }
    let summary = run.finish()?;
    result?;
    if args.json {
        crate::error::print_json(&summary)?;
    }
    stderr_line!("{}", tasks::render(&summary, &run.location));
    Ok(())
}
