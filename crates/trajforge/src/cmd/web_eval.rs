//! `trajforge web tasks` and `trajforge web eval`: held-out navigation tasks drawn from a
//! crawled site, and a model evaluated on them on the replayed site.

use std::path::PathBuf;

use trajforge_pipeline::prepare;
use trajforge_pipeline::webeval::{self, WebEvalSpec, WebTasksError, WebTasksSpec};

use crate::args::{BudgetArgs, StoreArgs, TeacherArgs};
use crate::error::{CliError, Kind};

/// Options of `trajforge web tasks`.
#[derive(Debug, clap::Args)]
#[command(
    after_help = "Targets are the pages reachable from the site's start page by recorded links, in an order \
drawn by --seed from their paths on the site (the same seed draws the same targets wherever the site was \
served). Each is a navigation task (reach the page) or an answer task (find a fact the page states), also \
drawn. The teacher phrases each as a visitor would ask; a phrasing that names a URL, path or file name, or \
whose answer the page does not state, is sent back with the reason (up to 3 times), and a target that still \
fails is replaced by the next. The file is in the eval task format, with the target under `web`."
)]
pub struct TasksArgs {
    /// A site folder written by `trajforge site crawl`.
    #[arg(long, value_name = "SITE_DIR")]
    pub site: PathBuf,
    /// The task file to write (JSON Lines; never overwritten).
    #[arg(long, value_name = "FILE.jsonl")]
    pub out: PathBuf,
    #[command(flatten)]
    pub teacher: TeacherArgs,
    /// Tasks to draw.
    #[arg(short = 'n', long = "tasks", default_value_t = 20, value_name = "N")]
    pub n: usize,
    /// Seed of the draw.
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
    /// Phrasings asked at once.
    #[arg(long, default_value_t = 4, value_name = "K")]
    pub concurrency: usize,
}

/// Options of `trajforge web eval`.
#[derive(Debug, clap::Args)]
#[command(
    mut_arg("store", |a| a.help(super::eval::STORE_HELP)),
    after_help = "Each task runs once per seed: the model gets the visitor's request alone on the task's start \
page of the replayed site (offline), with the browser harness and rollout-2 prompt of `web generate`. A \
navigation task succeeds when the final page is the target (URLs normalised: no fragment or tracking \
parameters, sorted query, index.html and trailing slash dropped); an answer task succeeds when the answer \
matches the target's. Both need an `answer` (not report_infeasible, not cut off). Route recall is the share \
of a shortest route to the target the model went through. EVAL_DIR holds the store (run the same command \
again to resume) and results.jsonl in `eval`'s format: `trajforge eval compare EVAL_A EVAL_B` compares two."
)]
pub struct EvalArgs {
    /// The site folder the tasks were drawn from.
    #[arg(long, value_name = "SITE_DIR")]
    pub site: PathBuf,
    /// The tasks: JSON Lines from `trajforge web tasks`.
    #[arg(long, value_name = "FILE.jsonl")]
    pub tasks: PathBuf,
    #[command(flatten)]
    pub teacher: TeacherArgs,
    /// The evaluation folder (created; holds the store and the written rows).
    #[arg(long, value_name = "EVAL_DIR")]
    pub out: PathBuf,
    #[command(flatten)]
    pub store: StoreArgs,
    /// Attempts per task (rows pair up by task and seed in `eval compare`).
    #[arg(long, default_value_t = 1, value_name = "N")]
    pub seeds: u32,
    /// A folder of prompt files overriding the defaults (web_rollout2.txt wraps the request).
    #[arg(long, value_name = "DIR")]
    pub prompts: Option<PathBuf>,
    /// Most model calls per episode.
    #[arg(long, default_value_t = 30, value_name = "N")]
    pub max_steps: usize,
    /// Episodes in flight at once (each holds a browser tab).
    #[arg(long, default_value_t = 2, value_name = "K")]
    pub concurrency: usize,
    /// Browser processes in the pool (default: as many as --concurrency).
    #[arg(long, value_name = "N")]
    pub browsers: Option<usize>,
    #[command(flatten)]
    pub budget: BudgetArgs,
}

/// Run `trajforge web tasks`.
pub fn tasks(args: TasksArgs) -> Result<(), CliError> {
    let spec = WebTasksSpec {
        site: args.site,
        out: args.out.clone(),
        n: args.n,
        seed: args.seed,
        concurrency: args.concurrency,
    };
    let runtime = prepare::runtime(args.concurrency)?;
    let teacher = super::teacher(&args.teacher.spec(), &runtime, None)?;
    let report = runtime.block_on(spec.draw(&teacher, &mut |written, tried| {
        stderr_line!("{written} tasks phrased ({tried} targets tried)");
    }))?;
    let (navigate, answer) = webeval::intents(&report.tasks);
    let counts = |m: &std::collections::BTreeMap<String, usize>| {
        m.iter()
            .map(|(k, v)| format!("{k} {v}"))
            .collect::<Vec<_>>()
            .join(", ")
    };
    stderr_line!(
        "wrote {} tasks ({navigate} navigation, {answer} answer) to {}; {} targets tried of {} reachable pages",
        report.tasks.len(),
        args.out.display(),
        report.tried,
        report.candidates
    );
    if !report.redone.is_empty() {
        stderr_line!("phrasings sent back: {}", counts(&report.redone));
    }
    if !report.skipped.is_empty() {
        stderr_line!("targets skipped: {}", counts(&report.skipped));
    }
    if report.tasks.len() < args.n {
        stderr_line!(
            "fewer than the {} asked: the site has no more pages the teacher could phrase",
            args.n
        );
    }
    stderr_line!(
        "teacher tokens: {} prompt + {} completion",
        report.usage.prompt_tokens,
        report.usage.completion_tokens
    );
    Ok(())
}

/// Run `trajforge web eval`.
pub fn eval(args: EvalArgs) -> Result<(), CliError> {
    let store = args.store.location_or(&args.out)?;
    let run = WebEvalSpec {
        out: args.out.clone(),
        store: Some(store.clone()),
        site: args.site,
        tasks: args.tasks,
        seeds: args.seeds,
        prompts: args.prompts,
        max_steps: args.max_steps,
        browsers: args.browsers.unwrap_or(args.concurrency),
        budget: args.budget.budget(),
    }
    .load()?;
    let tasks = (run.tasks().len(), "web tasks", args.seeds);
    let places = (args.out.as_path(), &store);
    super::eval::evaluate(&args.teacher, args.concurrency, tasks, places, |t| {
        run.prepare(t)
    })
}

impl From<WebTasksError> for CliError {
    fn from(err: WebTasksError) -> Self {
        let e = |kind| CliError::from_error(kind, &err);
        match &err {
            WebTasksError::NotASiteFolder(_) | WebTasksError::Site(_) => e(Kind::Input).hint(
                "crawl the site first: trajforge site crawl URL --out SITE_DIR (or --dir FOLDER for local HTML)",
            ),
            WebTasksError::OutputExists(_) => e(Kind::Input)
                .hint("give --out a new file; trajforge never overwrites a task file"),
            WebTasksError::NoneAsked => e(Kind::Input),
            WebTasksError::NoTargets { .. } => e(Kind::Input)
                .hint("crawl more of the site (--max-pages): tasks need pages linked from the start page"),
            WebTasksError::Teacher(_) => e(Kind::Failure)
                .hint("check --teacher and --model; nothing was written, so the same command starts over"),
            WebTasksError::NothingPhrased { .. } => e(Kind::Failure)
                .hint("the teacher kept naming addresses or answers the pages do not state; try a more capable model"),
            WebTasksError::Write(_) => e(Kind::Failure),
        }
    }
}
